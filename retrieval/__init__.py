"""Knowledge base: loaders, cleaning, chunking, embeddings, the Chroma store, search."""
