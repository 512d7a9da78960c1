"""pyconv's convolution engine (internal): geometry, plans, tuning and the executors.

``geometry``  ConvGeometry (one per call), the padding parser, tap pruning
``tuning``    every threshold of the algorithm choice, with its measurement
``plan``      Algorithm, Plan, the plan caches, forcing, PYCONV_VERBOSE, dry runs
``args``      argument checks shared by pyconv.nn and pyconv.grad
``conv``      planners and executors of forward / transposed / gradient convolutions
``resample``  upsampling, channel shuffle, im2col / col2im
``boundary``  one boundary index map for signal boundaries and nn padding modes
``explain``   pyconv.explain
See ARCHITECTURE.md at the repository root.
"""
