// One spelling of "callable on host and device" so the per-voxel math is written once
// and compiled both by the C++ compiler (CPU kernels) and by nvcc (CUDA kernels).
#pragma once

#if defined(__CUDACC__) || defined(__HIPCC__)
#define MOTIONEXT_HOST_DEVICE __host__ __device__
#else
#define MOTIONEXT_HOST_DEVICE
#endif

#define MOTIONEXT_INLINE MOTIONEXT_HOST_DEVICE inline
