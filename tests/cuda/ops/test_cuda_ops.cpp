// Every CUDA op against the CPU backend (tests/ops/backend_ops.hpp cases and tests/cuda/ops/cases_*.hpp;
// tests/cuda/ops/<group>.cu runs them on the GPU). For each case and each policy (fp32, and bf16
// weights/activations with fp32 statistics and gradients):
//   - every output within a relative L2 error of the CPU in double: 1e-5 (fp32) and 1e-2 (bf16);
//     integer outputs (ids, offsets, counts, document starts) exactly;
//   - cases that state `bitwise` (Philox fills, AdamW, the gradient norm) against the CPU run in the
//     SAME policy instead: bit for bit when `bitwise` is true, else within their relative L2 `tol`
//     (the gradient norm: fp64 sums in another order);
//   - two GPU runs bitwise equal (determinism).
// Pure outputs start as NaN, so an element a kernel never writes fails. Without a GPU the program
// prints why and exits 77 (CTest: skipped).
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <cstdio>
#include <cstring>
#include <string>

#include "cuda_ops.hpp"
#include "kumiki/cpu.hpp"

using namespace kumiki;
namespace bo = kumiki_test::backend_ops;
namespace co = kumiki_test::cuda_ops;

namespace {

/// Cases compared with the CPU in their own policy (a `bitwise` member) rather than in double.
template <class Case>
constexpr bool same_policy_reference() {
  return requires { Case::bitwise; };
}

template <class Case>
double tolerance(co::Dt dt) {
  if constexpr (same_policy_reference<Case>()) return Case::bitwise ? 0.0 : Case::tol;
  return dt == co::Dt::f32 ? 1e-5 : 1e-2;
}

bool bitwise_equal(std::vector<double> const& a, std::vector<double> const& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(double)) == 0;
}

template <class Case>
bo::Outputs cpu_reference(co::Dt dt) {
  ops::Ctx<Cpu> cpu;
  if constexpr (same_policy_reference<Case>())
    return dt == co::Dt::f32 ? Case::template run<Cpu, float>(cpu) : Case::template run<Cpu, co::Mixed>(cpu);
  else
    return Case::template run<Cpu, double>(cpu);
}

template <class Case>
void check_against_cpu() {
  for (co::Dt const dt : {co::Dt::f32, co::Dt::bf16}) {
    bo::Outputs const ref = cpu_reference<Case>(dt);
    bo::Outputs const got = co::run_cuda<Case>(dt);
    bo::Outputs const again = co::run_cuda<Case>(dt);
    REQUIRE(got.size() == ref.size());
    REQUIRE(again.size() == ref.size());
    for (std::size_t k = 0; k < ref.size(); ++k) {
      std::string const& out = ref[k].first;
      INFO(Case::name << ", " << co::dt_name(dt) << ": output '" << out << "'");
      REQUIRE(got[k].first == out);
      REQUIRE(got[k].second.size() == ref[k].second.size());
      CHECK(bitwise_equal(got[k].second, again[k].second));
      double const tol = bo::integer_output(out) ? 0.0 : tolerance<Case>(dt);
      if (tol == 0.0) {
        CHECK(bitwise_equal(got[k].second, ref[k].second));
        continue;
      }
      double const err = bo::relative_l2(got[k].second, ref[k].second);
      INFO("relative L2 error " << err << ", tolerance " << tol);
      CHECK(err <= tol);
    }
  }
}

}  // namespace

// ---- the cases, one test per group (tests/cuda/ops/<group>.cu; CTest runs each group by its tag) -----
#include "cases_attention.hpp"
#include "cases_elementwise.hpp"
#include "cases_gemm.hpp"
#include "cases_norm.hpp"
#include "cases_optim.hpp"

TEMPLATE_TEST_CASE("CUDA elementwise ops against the CPU", "[cuda][elementwise]", bo::ResidualCase, bo::SwiGluCase,
                   bo::RopeCase, bo::EmbeddingCase, bo::ResidualShapesCase, bo::SwiGluShapesCase, bo::RopeShapesCase,
                   bo::EmbeddingShapesCase, bo::FillCase) {
  check_against_cpu<TestType>();
}

TEMPLATE_TEST_CASE("CUDA norms against the CPU", "[cuda][norm]", bo::RmsNormCase, bo::ResidualRmsNormCase,
                   bo::RmsNormShapesCase, bo::ResidualRmsNormShapesCase) {
  check_against_cpu<TestType>();
}

TEMPLATE_TEST_CASE("CUDA linear layers and the LM-head loss against the CPU", "[cuda][gemm]", bo::LinearCase,
                   bo::LmHeadLossCase, bo::LinearOddCase, bo::LinearLlmJpCase, bo::LinearRouterCase,
                   bo::LmHeadLossOddCase, bo::LmHeadLossOneTokenCase, bo::LmHeadLossIgnoredCase,
                   bo::LmHeadLossLlmJpVocabCase, bo::LmHeadLossHiddenCase, bo::LmHeadLossDeferredCase) {
  check_against_cpu<TestType>();
}

TEMPLATE_TEST_CASE("CUDA attention against the CPU", "[cuda][attention]", bo::AttentionCase<false>,
                   bo::AttentionCase<true>, bo::AttentionSeqOneCase, bo::AttentionMhaOddCase, bo::AttentionMqa130Case,
                   bo::AttentionDocumentsCase, bo::AttentionAllEodCase, bo::AttentionSeqOneEodCase,
                   bo::AttentionLlmJp4SmallCase, bo::AttentionLlmJp4LargeCase, (bo::AttentionGqa300Case<128, true, 0>),
                   (bo::AttentionGqa300Case<64, false, 0>), (bo::AttentionGqa300Case<64, true, 1>),
                   (bo::AttentionGqa300Case<128, false, 2>), bo::AttentionCudaCoresCase<bo::AttentionMqa130Case>,
                   bo::AttentionCudaCoresCase<bo::AttentionLlmJp4LargeCase>,
                   (bo::AttentionCudaCoresCase<bo::AttentionGqa300Case<128, true, 0>>),
                   (bo::AttentionCudaCoresCase<bo::AttentionGqa300Case<64, false, 1>>)) {
  check_against_cpu<TestType>();
}

TEMPLATE_TEST_CASE("CUDA optimizer against the CPU", "[cuda][optim]", bo::OptimAdamWBitwiseCase<false>,
                   bo::OptimAdamWBitwiseCase<true>, bo::OptimAdamWHalvesBitwiseCase, bo::OptimGradNormCase) {
  check_against_cpu<TestType>();
}

// Small runs of every op for compute-sanitizer (memcheck, racecheck): the harness's base cases once
// per policy, no comparison (the groups above compare).
TEMPLATE_TEST_CASE("CUDA ops under compute-sanitizer", "[sanitize]", bo::ResidualCase, bo::SwiGluCase, bo::RopeCase,
                   bo::EmbeddingCase, bo::FillCase, bo::RmsNormCase, bo::ResidualRmsNormCase, bo::LinearCase,
                   bo::LmHeadLossCase, bo::AttentionCase<false>, bo::AttentionCase<true>, bo::AttentionLlmJp4SmallCase,
                   bo::OptimAdamWBitwiseCase<false>, bo::OptimAdamWHalvesBitwiseCase, bo::OptimGradNormCase) {
  for (co::Dt const dt : {co::Dt::f32, co::Dt::bf16}) CHECK(!co::run_cuda<TestType>(dt).empty());
}

int main(int argc, char** argv) {
  bool listing = false;
  for (int i = 1; i < argc; ++i) listing = listing || std::strncmp(argv[i], "--list", 6) == 0;
  if (!listing && co::device_count() == 0) {
    std::printf("test_cuda_ops: skipped: no CUDA device visible (no GPU or no driver); the CUDA ops were "
                "compiled but not run\n");
    return 77;
  }
  return Catch::Session().run(argc, argv);
}
