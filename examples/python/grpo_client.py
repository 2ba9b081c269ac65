"""A GRPO-style group through `glm5 serve`: one prompt, 8 seeds, in one batch request; prints
each trajectory's tokens with their three logprobs (scaled = SGLang's output_token_logprobs, raw,
processed). The members are admitted together: the first prefills the prompt, the others start
from a fork of its caches (meta_info.cached_tokens), with the same results as alone.

    .build/release/glm5 serve Tests/Fixtures/tiny-dsa --port 30000 &
    PYTHONPATH=bindings/python python3 examples/python/grpo_client.py [http://127.0.0.1:30000]
"""

import sys

from glm5.client import Client

url = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:30000"
c = Client(url)
prompt = [11, 42, 7, 199, 3]
group = 8
params = [{"temperature": 0.8, "top_p": 0.95, "max_new_tokens": 12, "sampling_seed": seed} for seed in range(group)]
answers = c.generate([prompt] * group, params, return_logprob=True)
for seed, a in enumerate(answers):
    m = a["meta_info"]
    print(f"seed {seed}: {m['completion_tokens']} tokens, finish {m['finish_reason']}, weights {m['weight_version']}, "
          f"{m['cached_tokens']} prompt tokens reused")
    for (scaled, tok, _), (raw, _, _), (proc, _, _) in zip(m["output_token_logprobs"], m["output_token_logprobs_raw"],
                                                           m["output_token_logprobs_processed"]):
        print(f"  {tok:6d}  scaled {scaled:9.4f}  raw {raw:9.4f}  processed {proc:9.4f}")
