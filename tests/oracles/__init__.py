"""Float64 numpy references written from docs/references/, independent of keras and of keras_norms.

Every oracle accepts complex128 as well as float64 arrays and is complex-analytic apart from
`max` (which compares real parts), so `derivatives.complex_step_vjp` differentiates it to
rounding error with no finite-difference step to tune.
"""
