"""The LPM model: VAE, audio encoder, DiT blocks, attention paths and the paged KV cache."""
