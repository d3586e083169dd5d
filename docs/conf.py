# Sphinx settings of the documentation site. `make docs` (tools/build_site.py) turns the notebooks
# into plain notebooks under _site/src and builds them with these settings into _docs/.
project = "fmcombo"
author = "fmcombo maintainers"
copyright = "fmcombo maintainers"

# MathJax from the sphinx-mathjax-offline package, copied into the site: the default loads it from a CDN
extensions = ["myst_nb", "sphinx-mathjax-offline"]
nb_execution_mode = "off"          # the notebooks' committed outputs are what the site shows
nb_output_stderr = "show"
myst_enable_extensions = ["colon_fence", "dollarmath"]
# nbdev's show_doc writes its API entries as level-3 headings, under a level-1 page title
suppress_warnings = ["myst.header"]
exclude_patterns = ["_build", "**.ipynb_checkpoints"]

html_theme = "furo"
html_title = "fmcombo"
html_static_path = ["_static"]
html_css_files = ["fmcombo.css"]
html_show_sourcelink = False
html_copy_source = False
html_last_updated_fmt = None
pygments_style = "default"
html_favicon = "_static/favicon.svg"   # a page without one makes the browser ask for /favicon.ico, a 404 in its console
