"""Training stage: tokenizer, the shared initial checkpoint, datasets, the Trainer set-up."""
