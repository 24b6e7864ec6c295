"""Reading images, folders, TI pairs; host-side preprocessing; the synthetic scene generator."""
