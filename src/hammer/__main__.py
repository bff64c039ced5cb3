from hammer.cli import main

main()
