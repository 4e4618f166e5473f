"""The content-addressed object store (photos, model packages) and `kito fsck`, which checks it
against the database."""
