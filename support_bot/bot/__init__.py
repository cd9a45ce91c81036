"""The bot engine: retrieval, memory, prompts, and the answering models."""
