"""The design catalog and the defect taxonomy, as clients read them."""
