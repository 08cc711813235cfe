// Expected-failure compile test (cuda.generic_instantiation): the generic model, block, MoE layer,
// trainer, optimizer and gradient norm instantiated for the Cuda backend. Everything above the ops
// is backend-generic, and every op of the dense model, AdamW and the gradient norm have their CUDA
// specializations, so this must fail ONLY because the MoE router and dispatch have none yet: each
// error is a missing-specialization static_assert ("kumiki: no ... for this backend") or a
// consequence of one (check_expected_failure.cmake classifies every error nvcc prints). When the
// MoE ops land, this file compiles, and the test is turned into a plain compile test.
#include "kumiki/cuda.cuh"
#include "kumiki/dist/nccl.cuh"        // NcclComm: the data-parallel (and ZeRO-1) trainer on GPUs
#include "kumiki/train/trainer.hpp"  // host-side layer, included by name

namespace k = kumiki;

// The dense and the MoE model, their blocks and the MoE layer, everything they call.
template struct k::nn::TransformerBlock<k::models::tiny_test, k::Cuda, float>;
template struct k::moe::MoeLayer<k::models::tiny_moe_test, k::Cuda, float>;
template class k::nn::Transformer<k::models::tiny_test, k::Cuda, float>;
template class k::nn::Transformer<k::models::tiny_moe_test, k::Cuda, float>;
// The same in the mixed precision a GPU trains in: bf16 weights and activations, fp32 statistics,
// gradients and master weights. Generic code that mixes up the policy's types fails here.
using Mixed = k::Precision<k::bf16, k::bf16, float, float, float>;
template struct k::nn::TransformerBlock<k::models::tiny_test, k::Cuda, Mixed>;
template struct k::moe::MoeLayer<k::models::tiny_moe_test, k::Cuda, Mixed>;
template class k::nn::Transformer<k::models::tiny_test, k::Cuda, Mixed>;
template class k::nn::Transformer<k::models::tiny_moe_test, k::Cuda, Mixed>;
// The trainer over the Cuda model, AdamW<Cuda> and the gradient norm, with the one-process communicator.
template class k::train::Trainer<k::models::tiny_test, k::Cuda, k::dist::NoComm>;
// ... and with NCCL: plain data parallelism and ZeRO-1 (reduce-scatter, the sharded AdamW<Cuda>, the
// all-gather, the moments gathered for a checkpoint and sharded from one).
template class k::train::Trainer<k::models::tiny_test, k::Cuda, k::dist::NcclComm>;
template k::optim::ClipResult k::optim::clip_grad_norm<k::Cuda, k::dist::NoComm>(
    k::ops::Ctx<k::Cuda>&, k::Arena<k::Cuda>&, double, k::FlatRange, k::dist::NoComm const&);
template double k::optim::global_grad_norm<k::Cuda, k::dist::NoComm>(k::ops::Ctx<k::Cuda>&, k::Arena<k::Cuda> const&,
                                                                    k::FlatRange, k::dist::NoComm const&);

int main() { return 0; }
