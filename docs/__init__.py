"""The user documentation, shipped inside the package as ``vexpress_cli.docs`` so that ``vexpress docs TOPIC``
shows it where only the wheel is installed (see vexpress_cli/user_docs.py). The pages are the .md files here."""
