// kumiki/kumiki.hpp: umbrella header for everything that builds with a plain C++ compiler.
#pragma once

#include "kumiki/config.hpp"
#include "kumiki/core/arena.hpp"
#include "kumiki/core/bf16.hpp"
#include "kumiki/core/buffer.hpp"
#include "kumiki/core/device.hpp"
#include "kumiki/core/dtype.hpp"
#include "kumiki/core/error.hpp"
#include "kumiki/core/philox.hpp"
#include "kumiki/core/shape.hpp"
#include "kumiki/core/tensor.hpp"
