"""hpl-convert HF_DIR -o OUT.gguf --outtype f32|f16|bf16|q8_0"""
from __future__ import annotations

import argparse
import sys
import time

from .convert import OUTTYPES, convert
from .errors import ConvertError
from .validate import check_file, compare_tokenization


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        prog="hpl-convert",
        description="Convert a Hugging Face causal LM folder (Llama, Mistral, Qwen2, Gemma 3; safetensors) "
        "to a GGUF file for hpl / llama.cpp.",
    )
    ap.add_argument("model_dir", metavar="HF_DIR", help="folder with config.json, *.safetensors, tokenizer files")
    ap.add_argument("-o", "--output", required=True, metavar="OUT.gguf")
    ap.add_argument("--outtype", choices=OUTTYPES, default="f16",
                    help="type of the 2-D weights (norms and biases stay f32; q8_0 falls back to f16 "
                         "for rows that are not a multiple of 32). Default f16.")
    ap.add_argument("--name", help="general.name (default: the folder name)")
    ap.add_argument("--hpl", help="hpl binary for the tokenizer check (default: $HPL_BUILD_DIR/bin/hpl)")
    ap.add_argument("--no-validate", action="store_true", help="skip reopening the file and the tokenizer check")
    ap.add_argument("--strict", action="store_true",
                    help="exit with an error (file kept) when hpl tokenizes a sample text differently from HF")
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    args = ap.parse_args(argv)

    def log(msg):
        print(msg, file=sys.stderr)

    try:
        t0 = time.time()
        res = convert(args.model_dir, args.output, args.outtype, name=args.name, progress=not args.quiet, log=log)
        log(f"hpl-convert: wrote {res.path}: {res.arch}, {len(res.tensors)} tensors, {len(res.vocab.tokens)} tokens "
            f"({res.vocab.model}/{res.vocab.pre}), {res.n_bytes / 2**20:.1f} MiB in {time.time() - t0:.1f} s")
        if not args.no_validate:
            check_file(res)
            log("hpl-convert: reopened the file: every tensor has the planned name, shape and type")
            compare_tokenization(res.path, args.model_dir, hpl=args.hpl, log=log, strict=args.strict)
    except ConvertError as e:
        log(f"hpl-convert: error: {e}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
