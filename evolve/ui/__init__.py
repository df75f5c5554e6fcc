"""`evolve ui`: a local web dashboard over run stores (no internet: every asset is served
from `static/`). `views.py` reads what each page shows from a store opened read-only;
`server.py` serves the pages and their JSON; `static/app.js` draws them.
"""
