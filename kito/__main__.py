from kito.cli import main

main()
