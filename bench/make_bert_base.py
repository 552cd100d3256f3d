import torch, json
from transformers import BertConfig, BertModel, BertTokenizerFast
vocab = ["[PAD]"] + [f"[unused{i}]" for i in range(99)] + ["[UNK]", "[CLS]", "[SEP]", "[MASK]"]
i = 0
while len(vocab) < 30522:
    vocab.append(f"w{i}")
    i += 1
tok = BertTokenizerFast(vocab={t: j for j, t in enumerate(vocab)}, do_lower_case=True)
tok.save_pretrained(".")
open("vocab.txt", "w").write("\n".join(vocab) + "\n")
cfg = BertConfig(architectures=["BertModel"])  # bert-base-uncased shape
torch.manual_seed(0)
m = BertModel(cfg, add_pooling_layer=False)
m.to(torch.float16).save_pretrained(".", safe_serialization=True)
print(cfg.hidden_size, cfg.num_hidden_layers, cfg.intermediate_size)
