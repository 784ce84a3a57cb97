from igpt_forensics.cli import main

main()
