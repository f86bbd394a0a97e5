"""What each built data source is: its origin, license and MTEB task (light: no builder is imported)."""

from __future__ import annotations

import platform

_PYTHON = platform.python_version()
_INFO_MAIN = "bc, coreutils, diffutils, ed, findutils, gettext, gnupg, grep, gzip, readline-common, sed, time, wget"

SOURCES = {
    "wordnet": {
        "source": "WordNet 3.0, Debian package wordnet-base (/usr/share/wordnet)",
        "license": "WordNet 3.0 license (Princeton University)",
        "task": "SearchR3WordNetRetrieval",
    },
    "debian": {
        "source": "Debian 12 bookworm main, English package descriptions (apt Translation-en index)",
        "license": "each package's own license",
        "task": "SearchR3DebianRetrieval",
    },
    "pycode": {
        "source": f"Python {_PYTHON} standard library source ({platform.python_implementation()})",
        "license": "Python Software Foundation License",
        "task": "SearchR3PythonCodeRetrieval",
    },
    "manpages": {
        "source": "Linux man-pages 6.03, Debian 12 packages manpages and manpages-dev (apt-get download)",
        "license": "each page's own (GPL-2.0-or-later or the man-pages verbatim license, in its header)",
        "task": "SearchR3ManPagesRetrieval",
    },
    "infomanuals": {
        "source": f"GNU info manuals of Debian 12 main packages ({_INFO_MAIN}; apt-get download); training pairs "
        "also from the manuals of 51 more packages (st_search_r3.data.infomanuals.SUPPLEMENT_PACKAGES)",
        "license": "each manual's own (GNU FDL or GPL, named in the manual)",
        "task": "SearchR3InfoManualsRetrieval",
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
    },
    # Held out of training: a test split only, the question-style task no training query resembles.
    "vimfaq": {
        "source": "the Vim FAQ as Debian 12 main ships it (vim-doc); apt-get download",
        "license": "the Vim license",
        "task": "SearchR3VimFAQRetrieval",
        "held_out": True,
    },
}
SOURCE_TASKS = {name: spec["task"] for name, spec in SOURCES.items()}
HELD_OUT = {name for name, spec in SOURCES.items() if spec.get("held_out")}
