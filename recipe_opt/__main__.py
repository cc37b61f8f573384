from recipe_opt.cli import main

main()
