"""The layering of DESIGN.md holds: no #include runs back up a layer (scripts/check_layers.py),
and the checker does catch one."""
import importlib.util
import os

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
spec = importlib.util.spec_from_file_location("check_layers",
                                              os.path.join(REPO, "scripts", "check_layers.py"))
check_layers = importlib.util.module_from_spec(spec)
spec.loader.exec_module(check_layers)


def test_no_back_arrows():
    assert check_layers.back_arrows() == []


def write(root, path, text):
    full = root / path
    full.parent.mkdir(parents=True, exist_ok=True)
    full.write_text(text)


def test_checker_finds_back_arrows(tmp_path):
    write(tmp_path, "kernel/ops.h", '#include "kernel/types.h"\n#include "engine/model.h"\n')
    write(tmp_path, "engine/forward.cc", '#include "runtime/session.h"\n#include <vector>\n')
    write(tmp_path, "runtime/session.cc", '#include "engine/forward.h"\n#include "tools/x.h"\n')
    write(tmp_path, "gguf/gguf.h", '#include "kernel/types.h"\n#include "kernel/ops.h"\n')
    write(tmp_path, "cli/cmd_run.cc", '#include "runtime/session.h"\n#include "kernel/isa.h"\n')
    bad = {(p, line, inc) for p, line, _, inc in check_layers.back_arrows(str(tmp_path))}
    assert bad == {("kernel/ops.h", 2, "engine/model.h"),
                   ("engine/forward.cc", 1, "runtime/session.h"),
                   ("runtime/session.cc", 2, "tools/x.h"),
                   ("gguf/gguf.h", 2, "kernel/ops.h")}
