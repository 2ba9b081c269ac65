// Kernels land with the forward pass (issue 3).
