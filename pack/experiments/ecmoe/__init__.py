"""ECMoE (seed 004): compressing the dispatch states of mixture-of-experts layers.

quantize.py    absmax / zero-point quantize -> dequantize at 2, 4, 8 bits; MSE, cosine, SNR
hooks.py       forward pre-hooks on every MoE block, router modes compressed / uncompressed
sft.py         SFT conversations -> chat template -> assistant-only labels, 80/10/10 split
perplexity.py  SFT-masked perplexity with an exact response-token count
model_io.py    one model load per process (ctx.cache)
task2.py       experiment `ecmoe_task2`: Task 2 perplexity + reconstruction metrics
gsm8k.py       experiment `ecmoe_gsm8k`: GSM8K (gsm8k_cot, 8-shot) through lm-eval's HF wrapper
ep_traffic.py  experiment `ecmoe_ep_traffic`: Task 8's dispatch bytes and savings (seed 002's wire accounting)
"""
