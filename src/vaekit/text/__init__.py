"""Sentences for the VAE: `config` (TextConfig, torch-free), `vocab` (tokenizer, vocabulary, batches),
`networks` (GRU encoder and decoder), `generate` (greedy, sampling, beam) and `model` (the sentence VAE
composed from them, saving, evaluation). The app is vaekit.apps.text."""
