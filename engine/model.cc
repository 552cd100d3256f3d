#include "engine/model.h"

#include "engine/repack_weights.h"

namespace hpl {

std::unique_ptr<Model> Model::load(const std::string& path) {
  auto m = std::make_unique<Model>();
  m->file = GgufFile::open(path);
  m->config = read_model_config(*m->file);
  m->weights = load_model_weights(*m->file, m->config);
  repack_weights(m->weights);
  return m;
}

}  // namespace hpl
