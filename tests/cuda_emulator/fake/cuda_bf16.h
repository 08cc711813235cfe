// Emulator stand-in for <cuda_runtime.h>: the device-side types and built-ins come from cuda_emu.hpp
// (force-included); host runtime API calls are not emulated (launch kernels with emu::launch).
#pragma once
