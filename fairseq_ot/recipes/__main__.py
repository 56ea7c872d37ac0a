"""python -m fairseq_ot.recipes NAME CRITERION [--task]: a recipe's flags."""

from fairseq_ot.recipes import main

main()
