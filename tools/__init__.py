"""Tools for the project itself: the doc generator and the web pages' deploy. Run from the repository root
(``python -m tools.docgen``, ``python -m tools.deploy_web``); never shipped to Lambda."""
