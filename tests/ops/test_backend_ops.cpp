// The op harness on the CPU: every op in float against the CPU in double (backend_ops.hpp). A CUDA
// test joins with the same cases: run<Cuda, float / bf16> against run<Cpu, double>.
#include <catch2/catch.hpp>

#include <cmath>
#include <string>

#include "backend_ops.hpp"
#include "kumiki/cpu.hpp"

using namespace kumiki;
namespace bo = kumiki_test::backend_ops;

TEMPLATE_TEST_CASE("backend ops: CPU float against CPU double", "[ops][backend]", bo::EmbeddingCase, bo::RmsNormCase,
                   bo::ResidualRmsNormCase, bo::ResidualCase, bo::LinearCase, bo::RopeCase, bo::SwiGluCase,
                   bo::AttentionCase<false>, bo::AttentionCase<true>, bo::LmHeadLossCase, bo::RouterCase,
                   bo::DispatchCase) {
  ops::Ctx<Cpu> ctx;
  bo::Outputs const ref = TestType::template run<Cpu, double>(ctx);
  bo::Outputs const got = TestType::template run<Cpu, float>(ctx);
  REQUIRE(got.size() == ref.size());
  for (std::size_t k = 0; k < ref.size(); ++k) {
    INFO(TestType::name << ": output '" << ref[k].first << "'");
    REQUIRE(got[k].second.size() == ref[k].second.size());
    double const err = bo::relative_error(got[k].second, ref[k].second);
    CHECK(err <= TestType::tol);
    // float is not double: a harness comparing identical computations would prove nothing.
    if (!bo::integer_output(ref[k].first)) CHECK(err > 0.0);
  }
}
