"""The data the benchmarks were built on, apart from the spaces that use it: where data files
live (the data root and the embedded defaults), the image readers, and the fixed, seeded
input batches every proxy of a job reads."""
