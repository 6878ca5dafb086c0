"""Sentences for the VAE: `config` (TextConfig, torch-free),
`networks` (GRU encoder and decoder), `generate` (greedy, sampling, beam) and `model` (the sentence VAE
composed from them, saving, evaluation). The tokenizer, vocabulary and batches are vaekit.data.text;
the app is vaekit.apps.text."""
