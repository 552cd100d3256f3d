// A loaded model: the GGUF mapping, its hyperparameters and its weights by role.
#pragma once

#include <memory>
#include <string>

#include "engine/model_config.h"
#include "engine/model_weights.h"
#include "gguf/gguf.h"

namespace hpl {

struct Model {
  std::unique_ptr<GgufFile> file;  // owns the mapping the weights point into
  ModelConfig config;
  ModelWeights weights;

  // Opens, validates and maps the file; throws GgufError / ModelError.
  static std::unique_ptr<Model> load(const std::string& path);
};

}  // namespace hpl
