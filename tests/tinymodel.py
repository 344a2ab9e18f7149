"""Build tiny random Llama models with a real byte-level BPE tokenizer, in-process.

The result is a normal Hugging Face folder (config.json, model.safetensors, tokenizer files,
chat template) so tests go through the real loading code. A few dims and layers: it loads and
generates in milliseconds, yet has a real KV cache, RoPE and a chat template.
"""

from __future__ import annotations

from pathlib import Path

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

_CORPUS = [
    "The capital of France is Paris. The capital of Italy is Rome.",
    "Once upon a time there was a small model that liked to talk about levers.",
    "def add(a, b):\n    return a + b\n",
    "Temperature, top-p and top-k change what a language model says.",
    "Ahoy matey! The pirate sailed the seven seas looking for treasure.",
    "Hello, how are you today? I am fine, thank you very much.",
    "Numbers: 0 1 2 3 4 5 6 7 8 9 10 100 1000. Symbols: [ ] { } ( ) < > | # * - _ = +",
    "Émile a mangé une crème brûlée à Zürich. 日本語のテキスト。 Ñandú 🙂",
]


def build_tokenizer(vocab_size: int = 400, extra_corpus: tuple[str, ...] = ()):  # type: ignore[no-untyped-def]
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator([*_CORPUS, *extra_corpus] * 4, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=None,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token=None,
        additional_special_tokens=["<|im_start|>"],
    )


def build_tiny_model_dir(
    path: Path,
    *,
    chat_template: bool = True,
    seed: int = 0,
    hidden_size: int = 32,
    layers: int = 2,
    max_position_embeddings: int = 256,
    rarely_ends: bool = False,
    extra_corpus: tuple[str, ...] = (),
) -> Path:
    """Write a tiny random Llama model + tokenizer to ``path`` and return it.

    ``rarely_ends`` makes the end-of-turn token's logit exactly 0 while the others spread over
    tens: replies then run until max_new_tokens or the context fills, whatever the numerics
    (which differ with torch's thread setup, so a test cannot rely on where a random model
    happens to stop).
    """
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    tokenizer = build_tokenizer(extra_corpus=extra_corpus)
    if chat_template:
        tokenizer.chat_template = CHATML_TEMPLATE
    eos_id = tokenizer.convert_tokens_to_ids("<|im_end|>")
    pad_id = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=max_position_embeddings,
        eos_token_id=eos_id,
        pad_token_id=pad_id,
        bos_token_id=None,
        tie_word_embeddings=not rarely_ends,
        # A wide init makes the logits peaked, so greedy choices are not near-ties and
        # equal computations give equal tokens, as with a trained model.
        initializer_range=0.5,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config).eval()
    if rarely_ends:
        with torch.no_grad():
            model.lm_head.weight[eos_id].zero_()
    model.generation_config = GenerationConfig(eos_token_id=eos_id, pad_token_id=pad_id)
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
