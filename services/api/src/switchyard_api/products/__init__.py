"""Products (seed 002): rows whose ``product.created`` event goes out through the outbox,
for the image-worker to download and compress their images."""
