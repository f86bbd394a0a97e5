"""What each built data source is: its origin, license and MTEB task, and where built data lives (light: no
builder is imported)."""

from __future__ import annotations

import os
import platform
from pathlib import Path

from st_search_r3.base_model import home_dir

_PYTHON = platform.python_version()
_INFO_MAIN = "bc, coreutils, diffutils, ed, findutils, gettext, gnupg, grep, gzip, readline-common, sed, time, wget"

# Each source that is an MTEB task of its own carries the task's card: "description", "reference", "domains" and,
# where the text has one license, "task_license" (MTEB's field; "not specified" otherwise).
SOURCES = {
    "wordnet": {
        "source": "WordNet 3.0, Debian package wordnet-base (/usr/share/wordnet)",
        "license": "WordNet 3.0 license (Princeton University)",
        "task": "SearchR3WordNetRetrieval",
        "description": "Reverse dictionary on WordNet 3.0: the query is a definition, the document the synset's "
        "words, hypernyms and usage examples. Split by synset.",
        "reference": "https://wordnet.princeton.edu/",
        "task_license": "https://wordnet.princeton.edu/license-and-commercial-use",
        "domains": ["Written"],
    },
    "debian": {
        "source": "Debian 12 bookworm main, English package descriptions (apt Translation-en index)",
        "license": "each package's own license",
        "task": "SearchR3DebianRetrieval",
        "description": "Debian 12 package search: the query is a package's one-line summary, the document its "
        "long description. Split by package, one package per shared first paragraph.",
        "reference": "https://www.debian.org/distrib/packages",
        "domains": ["Programming", "Written"],
    },
    "pycode": {
        "source": f"Python {_PYTHON} standard library source ({platform.python_implementation()})",
        "license": "Python Software Foundation License",
        "task": "SearchR3PythonCodeRetrieval",
        "description": "Code search in the Python standard library: the query is a function's first docstring "
        "line, the document its code without the docstring. Split by module.",
        "reference": "https://docs.python.org/3/library/",
        "task_license": "https://docs.python.org/3/license.html",
        "domains": ["Programming"],
    },
    "manpages": {
        "source": "Linux man-pages 6.03, Debian 12 packages manpages and manpages-dev (apt-get download)",
        "license": "each page's own (GPL-2.0-or-later or the man-pages verbatim license, in its header)",
        "task": "SearchR3ManPagesRetrieval",
        "description": "Linux man pages (man-pages 6.03, Debian 12): the query is a page's NAME summary without "
        "the function names, the document its DESCRIPTION section. Split by page, one page per summary.",
        "reference": "https://www.kernel.org/doc/man-pages/",
        "domains": ["Programming"],
    },
    "infomanuals": {
        "source": f"GNU info manuals of Debian 12 main packages ({_INFO_MAIN}; apt-get download); training pairs "
        "also from the manuals of 51 more packages (st_search_r3.data.infomanuals.SUPPLEMENT_PACKAGES)",
        "license": "each manual's own (GNU FDL or GPL, named in the manual)",
        "task": "SearchR3InfoManualsRetrieval",
        "description": "GNU info manuals shipped by Debian 12 main packages (coreutils, findutils, grep, sed, "
        "gzip, gnupg, ...): the query is a section's title without its number, the document the section's text. "
        "Split by section; titles used by more than one section are dropped.",
        "reference": "https://www.gnu.org/manual/",
        "domains": ["Programming"],
    },
    # The 13 evaluation packages alone: the training set of the recipe's first two parts (sft_all.yaml,
    # sft_focus.yaml), built before the supplement existed. Dev and test equal those of "infomanuals".
    "infomanuals_core": {
        "source": f"GNU info manuals of Debian 12 main packages ({_INFO_MAIN}; apt-get download)",
        "license": "each manual's own (GNU FDL or GPL, named in the manual)",
        "task": "SearchR3InfoManualsRetrieval",
    },
    "faqs": {
        "source": "FAQs of Debian 12 main packages: the Perl FAQ (perl-doc, perlfaq1-9) and the Z Shell FAQ "
        "(zsh-doc); training questions also from perlunifaq, the libnet and IO::Compress FAQs, gitfaq and the "
        "screen, fetchmail and procmail FAQs (st_search_r3.data.faqs.SUPPLEMENT_PACKAGES); apt-get download",
        "license": "each FAQ's own (Perl: Artistic License or GPL; the Zsh FAQ's copyright notice; Git, screen, "
        "fetchmail: GPL; procmail: GPL or Artistic License)",
        "task": "SearchR3FAQRetrieval",
        "description": "Questions as people ask them: the Perl FAQ (perlfaq1-9) and the Z Shell FAQ, as Debian 12 "
        "main ships them. The query is a question, the document its answer. Split by question.",
        "reference": "https://perldoc.perl.org/perlfaq",
        "domains": ["Programming", "Written"],
    },
    # Held out of training: a test split only, the question-style task no training query resembles.
    "vimfaq": {
        "source": "the Vim FAQ as Debian 12 main ships it (vim-doc); apt-get download",
        "license": "the Vim license",
        "task": "SearchR3VimFAQRetrieval",
        "description": "Questions as people ask them, held out of training: the Vim FAQ as Debian 12 main ships "
        "it (vim-doc). The query is a question, the document its answer. A test split only.",
        "reference": "https://vimhelp.org/vim_faq.txt.html",
        "domains": ["Programming", "Written"],
        "held_out": True,
    },
}
SOURCE_TASKS = {name: spec["task"] for name, spec in SOURCES.items()}
HELD_OUT = {name for name, spec in SOURCES.items() if spec.get("held_out")}


def data_dir() -> Path:
    """Where built data lives: ``$ST_SEARCH_R3_DATA``, default ``<st-search-r3 home>/data``."""
    return Path(os.environ.get("ST_SEARCH_R3_DATA", home_dir() / "data"))
