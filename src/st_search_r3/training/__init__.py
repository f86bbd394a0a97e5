"""Training search-r3: stage 1 (supervised, ``train/sft.py``) and stage 2 (GRPO, ``train/rl.py``).

- ``config``: the two stages' settings (one shared base)
- ``losses``: the stage-1 loss; ``sft_data``: its model and data; ``reasoning_cache``: cached reasoning
- ``recipe``: the data hash and the triplet draw a run is pinned by
- ``evaluation``, ``callbacks``, ``checkpoints``: dev scores, curves, checkpoints and the end of a run
- ``grpo_trainer``, ``reward``, ``corpus_index``, ``rl_data``: stage 2 and its cached-corpus environment
- ``lora_stack``, ``ship``: putting a trained adapter into the package
"""
