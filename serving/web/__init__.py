"""The two web pages (plain HTML, CSS, JavaScript under this folder) and the router serving them."""
