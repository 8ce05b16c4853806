"""Benchmark: how good the embedded quickstart's tiny LLaMA gets in a few minutes on CPU threads, against a unigram
model of the same tokens. The corpus, split and tokenizer are prunebench.language.tiny's (Python's own
pydoc_data/topics.py); the model is `tiny_llama_config`'s, trained from scratch with a plain torch loop: AdamW
(betas 0.9, 0.95, weight decay 0.1 on matrices), a linear warm-up over the first 5% of steps then a cosine decay to
10% of the peak rate, gradient norm clipped at 1, batches of random windows of the training tokens (seeded).

Perplexity is the references' (prunebench.language.perplexity: non-overlapping windows, tail dropped); the unigram
baseline is the training tokens' add-one-smoothed frequencies scored on exactly the tokens that perplexity scores.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/tiny_lm.py [--steps 700] [--threads 2] [--eval-every N] [--save DIR]

Measured (CPython 3.11.7, torch 2.14.1, transformers 4.57.6, tokenizers 0.22.2; a 2-core machine shared with other
low-priority jobs, so wall times are upper bounds; vocabulary 1024; 1,000,576 parameters, 738,304 in the blocks;
training tokens 132,534, validation 10,552, test 16,817):

    steps  epochs  wall (CPU) s   train ppl  validation ppl  test ppl   unigram: train / validation / test
      300    4.6    80 (100)        60.5        89.3          89.5     377.6 / 390.3 / 387.5
      700   10.8    68 (134)         7.04       37.5          38.8     (the same for every row)
      900   13.9    95 (187)         4.07       47.9          43.5
     1600   24.7   264 (383)         1.55      124.5          94.6

Two runs of 700 steps gave the same perplexities to the last digit. Validation perplexity bottoms out near 37.5
around steps 500-700 and rises after (the 1600-step run: 42.6 at step 400, 124.5 at 1600): about 3 minutes of
training (~1600 steps on 2 idle threads, ~0.1 s a step) memorizes the 132k training tokens, so the quickstart
should train ~700 steps (about 70 s). A vocabulary of 2048 (1,262,720 parameters, 106,747 training tokens) gave
validation perplexity 92.2 against a unigram's 608 at 500 steps: the same ~1.3 nats per character as 1024's 38.5
there, with a larger share of the model in its (unpruned) embeddings.
"""

from __future__ import annotations

import argparse
import math
import time

import torch


def unigram_perplexity(train: torch.Tensor, scored: torch.Tensor, vocab: int) -> float:
    counts = torch.bincount(train, minlength=vocab).double() + 1
    logp = (counts / counts.sum()).log()
    return math.exp(-float(logp[scored].mean()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=700)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--vocab", type=int, default=1024)
    parser.add_argument("--eval-every", type=int, default=0, help="validation perplexity every this many steps")
    parser.add_argument("--seqlen", type=int, default=128)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--save", help="save the trained model and tokenizer here (save_pretrained)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from transformers import LlamaForCausalLM

    from prunebench.language import hf_logits, perplexity, windows
    from prunebench.language.tiny import read_topics, tiny_llama_config, tokenizer_sha256, train_tokenizer

    start = time.perf_counter()
    topics = read_topics()
    tokenizer = train_tokenizer(topics.documents["train"], args.vocab)
    ids = {split: torch.tensor(tokenizer(topics.text(split))["input_ids"]) for split in topics.documents}
    print(f"corpus sha256 {topics.sha256}, {topics.characters} characters; tokenizer {tokenizer_sha256(tokenizer)}")
    print("tokens " + ", ".join(f"{split} {len(t)}" for split, t in ids.items()))

    torch.manual_seed(args.seed)
    model = LlamaForCausalLM(tiny_llama_config(len(tokenizer), positions=max(256, args.seqlen)))
    params = sum(p.numel() for p in model.parameters())
    body = sum(p.numel() for n, p in model.named_parameters() if ".layers." in n)
    print(f"parameters {params} ({body} in the decoder blocks)")
    decay = [p for p in model.parameters() if p.dim() >= 2]
    other = [p for p in model.parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.1}, {"params": other, "weight_decay": 0.0}],
        lr=args.lr,
        betas=(0.9, 0.95),
    )
    warmup = max(1, args.steps // 20)

    def rate(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, args.steps - warmup)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, rate)
    generator = torch.Generator().manual_seed(args.seed)
    train = ids["train"]
    setup = time.perf_counter() - start
    start, cpu = time.perf_counter(), time.process_time()
    model.train()
    for step in range(args.steps):
        starts = torch.randint(0, len(train) - args.seqlen, (args.batch,), generator=generator)
        batch = torch.stack([train[s : s + args.seqlen] for s in starts.tolist()])
        loss = model(input_ids=batch, labels=batch, use_cache=False).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        if step % 50 == 0 or step == args.steps - 1:
            print(f"step {step:4d}  loss {loss.item():.3f}  {time.perf_counter() - start:6.1f} s", flush=True)
        if args.eval_every and (step + 1) % args.eval_every == 0:
            model.eval()
            ppl = perplexity(hf_logits(model), ids["validation"], args.seqlen)
            print(f"step {step + 1:4d}  validation perplexity {ppl:.2f}", flush=True)
            model.train()
    trained, trained_cpu = time.perf_counter() - start, time.process_time() - cpu

    model.eval()
    start = time.perf_counter()
    for split, tokens in ids.items():
        ppl = perplexity(hf_logits(model), tokens, args.seqlen, batch_size=16)
        scored = windows(tokens, args.seqlen)[:, 1:].reshape(-1)
        unigram = unigram_perplexity(train, scored, len(tokenizer))
        print(f"{split:10s} perplexity {ppl:8.2f}   unigram {unigram:8.2f}   ({scored.numel()} tokens scored)")
    evaluated = time.perf_counter() - start
    tokens_seen = args.steps * args.batch * args.seqlen
    print(
        f"{args.steps} steps x {args.batch} x {args.seqlen} = {tokens_seen} tokens "
        f"({tokens_seen / len(train):.1f} epochs) in {trained:.1f} s on {torch.get_num_threads()} threads "
        f"({trained_cpu:.1f} s of CPU time); "
        f"setup {setup:.1f} s, evaluation {evaluated:.1f} s"
    )
    if args.save:
        model.save_pretrained(args.save)
        tokenizer.save_pretrained(args.save)


if __name__ == "__main__":
    main()
