// kumiki/cli/all.hpp: every command of the kumiki program (kumiki/cli/app.hpp), for a program of
// one's own in one translation unit: `return kumiki::cli::main<MyConfigs>(argc, argv, {"mytrainer"});`.
#pragma once

#include "kumiki/cli/app.hpp"
#include "kumiki/cli/data.hpp"
#include "kumiki/cli/dump.hpp"
#include "kumiki/cli/eval.hpp"
#include "kumiki/cli/generate.hpp"
#include "kumiki/cli/hf.hpp"
#include "kumiki/cli/info.hpp"
#include "kumiki/cli/lr.hpp"
#include "kumiki/cli/micro_anneal.hpp"
#include "kumiki/cli/plot.hpp"
#include "kumiki/cli/preprocess.hpp"
#include "kumiki/cli/soup.hpp"
#include "kumiki/cli/spikes.hpp"
#include "kumiki/cli/train.hpp"
#include "kumiki/cli/upcycle.hpp"
