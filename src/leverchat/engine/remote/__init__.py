"""The remote engine: leverchat's chat over any OpenAI-compatible server (vLLM, SGLang, TGI,
llama-server, Ollama, `transformers serve`). Never imports torch or transformers."""
