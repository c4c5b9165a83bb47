"""Report-generation NLG scores through pycocoevalcap: BLEU-1..4, ROUGE-L, CIDEr-D, METEOR (Java).

Text goes through :func:`tokenize` (pycocoevalcap's PTBTokenizer, computed in Python: no Java)
and then straight into pycocoevalcap's own scorers, so every number is pycocoevalcap's. One reference per prediction (report generation
has one reference report per study).

Corpus vs per-sample. ``nlg_scores`` gives the corpus values. ``nlg_per_sample`` gives what each
scorer returns per report:

* ROUGE-L: the corpus value is the mean of the per-sample values.
* CIDEr-D: per-sample values use the IDF of the *whole* corpus (CIDEr needs the corpus). Their
  mean is the corpus value. Resampling them for a bootstrap keeps the IDF fixed.
* BLEU-n: per-sample values are pycocoevalcap's sentence-level BLEU (its 1e-9/1e-15 smoothing,
  brevity penalty per sentence). Corpus BLEU pools n-gram counts over the corpus, so it is **not**
  the mean of the per-sample values.
* METEOR: per-sample segment scores; the corpus value is METEOR's aggregate over pooled
  statistics, not their mean.

METEOR runs pycocoevalcap's METEOR 1.5 jar. Without ``java`` on PATH it is not computed: the
``meteor`` key is absent and :func:`meteor_missing_reason` says why. Nothing stands in for it.
"""
from __future__ import annotations

import re
import shutil
import threading
import unicodedata
from functools import lru_cache

from xrbench.errors import DataError

# -- PTBTokenizer, in Python --------------------------------------------------------------------
# pycocoevalcap's PTBTokenizer runs Stanford CoreNLP 3.4.1's PTBLexer (a JFlex lexer) with
# -preserveLines -lowerCase. Below are that lexer's macros and rules (PTBLexer.flex at the v3.4.1
# tag of stanfordnlp/CoreNLP, options at their defaults there) transcribed; JFlex's longest-match
# choice among them is made explicit.

def _ranges(pred) -> str:
    """A regex class body of the BMP code points where ``pred`` holds (JFlex's classes are BMP)."""
    out, start = [], None
    for cp in range(0x10000):
        ok = not (0xD800 <= cp <= 0xDFFF) and pred(chr(cp))
        if ok and start is None:
            start = cp
        elif not ok and start is not None:
            out.append((start, cp - 1)); start = None
    return "".join(f"\\u{a:04X}" if a == b else f"\\u{a:04X}-\\u{b:04X}" for a, b in out)


#: PTBLexer.flex (CoreNLP 3.4.1) macros, verbatim but for the Unicode classes
_MACROS = dict(
    SGML=r"""\<([!\?][A-Za-z\-][^>\r\n]*|[A-Za-z][A-Za-z0-9_:\.\-]*([ ]+([A-Za-z][A-Za-z0-9_:\.\-]*|[A-Za-z][A-Za-z0-9_:\.\-]*[ ]*=[ ]*('[^']*'|\"[^\"]*\")))*[ ]*\/?|\/[A-Za-z][A-Za-z0-9_:\.\-]*)[ ]*\>""",
    SPMDASH=r"&(MD|mdash|ndash);|[\u0096\u0097\u2013\u2014\u2015]",
    SPAMP=r"&amp;",
    SPPUNC=r"&(HT|TL|UR|LR|QC|QL|QR|odq|cdq|#[0-9]+);",
    SPLET=r"&[aeiouAEIOU](acute|grave|uml);",
    SPACE=r"[ \t\u00A0\u2000-\u200A\u3000]",
    SPACES=r"{SPACE}+",
    NEWLINE=r"\r\n|\r|\n|\u2028|\u2029|\u000B|\u000C|\u0085",
    SPACENL=r"({SPACE}|{NEWLINE})",
    SPACENLS=r"{SPACENL}+",
    SENTEND=r"{SPACENL}({SPACENL}|[:uppercase:]|{SGML})",
    DIGIT=r"[:digit:]|[\u07C0-\u07C9]",
    DATE=r"{DIGIT}{1,2}[\-\/]{DIGIT}{1,2}[\-\/]{DIGIT}{2,4}",
    NUM=r"{DIGIT}*([.:,\u00AD\u066B\u066C]{DIGIT}+)+|{DIGIT}+",
    NUMBER=r"[\-+]?{NUM}",
    SUBSUPNUM=r"[\u207A\u207B\u208A\u208B]?([\u2070\u00B9\u00B2\u00B3\u2074-\u2079]+|[\u2080-\u2089]+)",
    FRAC=r"({DIGIT}{1,4}[- \u00A0])?{DIGIT}{1,4}(\\?\/|\u2044){DIGIT}{1,4}",
    FRAC2=r"[\u00BC\u00BD\u00BE\u2153-\u215E]",
    DOLSIGN=r"([A-Z]*\$|#)",
    DOLSIGN2=r"[\u00A2\u00A3\u00A4\u00A5\u0080\u20A0\u20AC\u060B\u0E3F\u20A4\uFFE0\uFFE1\uFFE5\uFFE6]",
    LETTER=r"([:letter:]|{SPLET}|[\u00AD\u0237-\u024F\u02C2-\u02C5\u02D2-\u02DF\u02E5-\u02FF\u0300-\u036F\u0370-\u037D\u0384\u0385\u03CF\u03F6\u03FC-\u03FF\u0483-\u0487\u04CF\u04F6-\u04FF\u0510-\u0525\u055A-\u055F\u0591-\u05BD\u05BF\u05C1\u05C2\u05C4\u05C5\u05C7\u0615-\u061A\u063B-\u063F\u064B-\u065E\u0670\u06D6-\u06EF\u06FA-\u06FF\u070F\u0711\u0730-\u074F\u0750-\u077F\u07A6-\u07B1\u07CA-\u07F5\u07FA\u0900-\u0903\u093C\u093E-\u094E\u0951-\u0955\u0962-\u0963\u0981-\u0983\u09BC-\u09C4\u09C7\u09C8\u09CB-\u09CD\u09D7\u09E2\u09E3\u0A01-\u0A03\u0A3C\u0A3E-\u0A4F\u0A81-\u0A83\u0ABC-\u0ACF\u0B82\u0BBE-\u0BC2\u0BC6-\u0BC8\u0BCA-\u0BCD\u0C01-\u0C03\u0C3E-\u0C56\u0D3E-\u0D44\u0D46-\u0D48\u0E30-\u0E3A\u0E47-\u0E4E\u0EB1-\u0EBC\u0EC8-\u0ECD])",
    WORD=r"{LETTER}({LETTER}|{DIGIT})*([.!?]{LETTER}({LETTER}|{DIGIT})*)*",
    FILENAME_EXT=r"bat|bmp|c|class|cgi|cpp|dll|doc|docx|exe|gif|gz|h|htm|html|jar|java|jpeg|jpg|mov|mp3|pdf|php|pl|png|ppt|ps|py|sql|tar|txt|wav|x|xml|zip",
    FILENAME=r"({LETTER}|{DIGIT})+([.]({LETTER}|{DIGIT})+)*([.]{FILENAME_EXT})",
    THING=r"([dDoOlL]{APOSETCETERA}([:letter:]|[:digit:]))?([:letter:]|[:digit:])+({HYPHEN}([dDoOlL]{APOSETCETERA}([:letter:]|[:digit:]))?([:letter:]|[:digit:])+)*",
    THINGA=r"[A-Z]+(([+&]|{SPAMP})[A-Z]+)+",
    THING3=r"[A-Za-z0-9]+(-[A-Za-z]+){0,2}(\\?\/[A-Za-z0-9]+(-[A-Za-z]+){0,2}){1,2}",
    APOS=r"['\u0092\u2019]|&apos;",
    APOSETCETERA=r"{APOS}|[`\u0091\u2018\u201B]",
    HTHING=r"[A-Za-z0-9][A-Za-z0-9.,\u00AD]*(-({ACRO2}\.|[A-Za-z0-9\u00AD]+))+",
    REDAUX=r"{APOS}([msdMSD]|re|ve|ll)",
    SWORD=r"[A-Za-z\u00AD]*[A-MO-Za-mo-z](\u00AD)*",
    SREDAUX=r"n{APOSETCETERA}t",
    APOWORD=r"{APOS}n{APOS}?|[lLdDjJ]{APOS}|Dunkin{APOS}|somethin{APOS}|ol{APOS}|{APOS}em|[A-HJ-XZn]{APOSETCETERA}[:letter:]{2}[:letter:]*|{APOS}[2-9]0s|{APOS}till?|[:letter:][:letter:]*[aeiouyAEIOUY]{APOSETCETERA}[aeiouA-Z][:letter:]*|{APOS}cause|cont'd\.?|'twas|nor'easter|c'mon|e'er|s'mores|ev'ry|li'l|nat'l|O{APOSETCETERA}o",
    APOWORD2=r"y{APOS}",
    FULLURL=r"https?:\/\/[^ \t\n\f\r\"<>|(){}]+[^ \t\n\f\r\"<>|.!?(){},-]",
    LIKELYURL=r"((www\.([^ \t\n\f\r\"<>|.!?(){},]+\.)+[a-zA-Z]{2,4})|(([^ \t\n\f\r\"`'<>|.!?(){},-_$]+\.)+(com|net|org|edu)))(\/[^ \t\n\f\r\"<>|()]+[^ \t\n\f\r\"<>|.!?(){},-])?",
    EMAIL=r"(&lt;|<)?[a-zA-Z0-9][^ \t\n\f\r\"<>|()\u00A0{}]*@([^ \t\n\f\r\"<>|(){}.\u00A0]+\.)*([^ \t\n\f\r\"<>|(){}.\u00A0]+)(&gt;|>)?",
    TWITTER=r"@[a-zA-Z_][a-zA-Z_0-9]*|#{LETTER}+",
    ABMONTH=r"Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec",
    ABDAYS=r"Mon|Tue|Tues|Wed|Thu|Thurs|Fri",
    ABSTATE=r"Ala|Ariz|[A]z|[A]rk|Calif|Colo|Conn|Ct|Dak|[D]el|Fla|Ga|[I]ll|Ind|Kans?|Ky|[L]a|[M]ass|Md|Mich|Minn|[M]iss|Mo|Mont|Neb|Nev|Okla|[O]re|[P]a|Penn|Tenn|[T]ex|Va|Vt|[W]ash|Wisc?|Wyo",
    ABCOMP=r"Inc|Cos?|Corp|Pp?t[ye]s?|Ltd|Plc|Rt|Bancorp|Bhd|Assn|Univ|Intl|Sys",
    ABNUM=r"tel|est|ext|sq",
    ABPTIT=r"Jr|Sr|Bros|(Ed|Ph)\.D|Blvd|Rd|Esq",
    ABBREV1=r"({ABMONTH}|{ABDAYS}|{ABSTATE}|{ABCOMP}|{ABNUM}|{ABPTIT}|etc|al|seq|Bldg)\.",
    ACRO=r"(Canada|Sino|Korean|EU|Japan|non)-U\.S|U\.S\.-(U\.S\.S\.R|U\.K)|[A-Za-z](\.[A-Za-z])*",
    ACRO2=r"(Canada|Sino|Korean|EU|Japan|non)-U\.S|U\.S\.-(U\.S\.S\.R|U\.K)|[A-Za-z](\.[A-Za-z])+",
    ABTITLE=r"Mr|Mrs|Ms|[M]iss|Drs?|Profs?|Sens?|Reps?|Attys?|Lt|Col|Gen|Messrs|Govs?|Adm|Rev|Maj|Sgt|Cpl|Pvt|Capt|Ste?|Ave|Pres|Lieut|Hon|Brig|Co?mdr|Pfc|Spc|Supts?|Det|Mt|Ft|Adj|Adv|Asst|Assoc|Ens|Insp|Mlle|Mme|Msgr|Sfc",
    ABCOMP2=r"Invt|Elec|Natl|M[ft]g|Dept",
    ABBREV4=r"{ABTITLE}|vs|Alex|Wm|Jos|Cie|a\.k\.a|cf|TREAS|Ph|{ACRO}|{ABCOMP2}",
    ABBREV2=r"({ABBREV4})\.",
    ACRONYM=r"({ACRO})\.",
    ABBREV3=r"(ca|figs?|prop|nos?|art|bldg|prop|pp|op)\.",
    PHONE=r"(\([0-9]{2,3}\)[ \u00A0]?|(\+\+?)?([0-9]{2,4}[\- \u00A0])?[0-9]{2,4}[\- \u00A0])[0-9]{3,4}[\- \u00A0]?[0-9]{3,5}|((\+\+?)?[0-9]{2,4}\.)?[0-9]{2,4}\.[0-9]{3,4}\.[0-9]{3,5}",
    FAKEDUCKFEET=r"<<|>>",
    LESSTHAN=r"<|&lt;",
    GREATERTHAN=r">|&gt;",
    HYPHEN=r"[-_\u058A\u2010\u2011]",
    HYPHENS=r"\-+",
    LDOTS=r"\.{3,5}|(\.[ \u00A0]){2,4}\.|[\u0085\u2026]",
    FNMARKS=r"@+|#+|_+",
    ASTS=r"\*+|(\\\*){1,3}",
    INSENTP=r"[,;:\u3001]",
    QUOTES=r"{APOS}|''|[`\u2018\u2019\u201A\u201B\u201C\u201D\u0091\u0092\u0093\u0094\u201E\u201F\u2039\u203A\u00AB\u00BB]{1,2}",
    DBLQUOT=r"\"|&quot;",
    TBSPEC=r"-(RRB|LRB|RCB|LCB|RSB|LSB)-|C\.D\.s|pro-|anti-|S(&|&amp;)P-500|S(&|&amp;)Ls|Cap{APOS}n|c{APOS}est",
    TBSPEC2=r"{APOS}[0-9][0-9]",
    SMILEY=r"[<>]?[:;=][\-o\*']?[\(\)DPdpO\\{@\|\[\]]",
    ASIANSMILEY=r"[\^x=~<>]\.\[\^x=~<>]|[\-\^x=~<>']_[\-\^x=~<>']|\([\-\^x=~<>'][_.]?[\-\^x=~<>']\)|\([\^x=~<>']-[\^x=~<>'`]\)",
    MISCSYMBOL=r"[+%&~\^|\\¦\u00A7¨\u00A9\u00AC\u00AE¯\u00B0-\u00B3\u00B4-\u00BA\u00D7\u00F7\u0387\u05BE\u05C0\u05C3\u05C6\u05F3\u05F4\u0600-\u0603\u0606-\u060A\u060C\u0614\u061B\u061E\u066A\u066D\u0703-\u070D\u07F6\u07F7\u07F8\u0964\u0965\u0E4F\u1FBD\u2016\u2017\u2020-\u2023\u2030-\u2038\u203B\u203E-\u2042\u2044\u207A-\u207F\u208A-\u208E\u2100-\u214F\u2190-\u21FF\u2200-\u2BFF\u3012\u30FB\uFF01-\uFF0F\uFF1A-\uFF20\uFF3B-\uFF40\uFF5B-\uFF65\uFF65]",
)
_ACRO_WORDS = r"[A]bout|[A]ccording|[A]dditionally|[A]fter|[A]n|[A]|[A]s|[A]t|[B]ut|[E]arlier|[H]e|[H]er|[H]ere|[H]owever|[I]f|[I]n|[I]t|[L]ast|[M]any|[M]ore|[M]r\.|[M]s\.|[N]ow|[O]nce|[O]ne|[O]ther|[O]ur|[S]he|[S]ince|[S]o|[S]ome|[S]uch|[T]hat|[T]he|[T]heir|[T]hen|[T]here|[T]hese|[T]hey|[T]his|[W]e|[W]hen|[W]hile|[W]hat|[Y]et|[Y]ou|{SGML}"

#: the rules in PTBLexer.flex order: (regex, trailing context or None, action)
_RULES = [
    (r"c[+][+]", None, "keep"), (r"(c|f)#", None, "keep"),
    (r"cannot", None, "back3"), (r"'twas", None, "back3"), (r"'tis", None, "back2"),
    (r"gonna|gotta|lemme|gimme|wanna", None, "back2"),
    (r"{SGML}", None, "nbsp"), (r"{SPMDASH}", None, "--"), (r"{SPAMP}", None, "amp"), (r"{SPPUNC}", None, "keep"),
    (r"{WORD}", r"{REDAUX}", "soft"), (r"{SWORD}", r"{SREDAUX}", "soft"), (r"{WORD}", None, "soft"),
    (r"{APOWORD}", None, "keep"), (r"{APOWORD2}", r"[:letter:]", "keep"),
    (r"{FULLURL}", None, "keep"), (r"{LIKELYURL}", None, "keep"), (r"{EMAIL}", None, "keep"),
    (r"{TWITTER}", None, "keep"),
    (r"{REDAUX}", r"[^A-Za-z]", "right"), (r"{SREDAUX}", r"[^A-Za-z]", "right"),
    (r"{DATE}", None, "keep"), (r"{NUMBER}", None, "soft"), (r"{SUBSUPNUM}", None, "keep"),
    (r"{FRAC}", None, "nbsp"), (r"{FRAC2}", None, "frac"), (r"{TBSPEC}", None, "amp"), (r"{THING3}", None, "keep"),
    (r"{DOLSIGN}", None, "keep"), (r"{DOLSIGN2}", None, "currency"),
    (r"{ACRONYM}", r"({SPACENLS})(" + _ACRO_WORDS + r"){SPACENL}", "acronym"),
    (r"{ABBREV3}", r"{SPACENL}?[:digit:]", "keep"),
    (r"(pt[eyEY]|co)\.", r"{SPACE}(ltd|lim)", "keep"),
    (r"{ABBREV1}", r"{SENTEND}", "period"), (r"{ABBREV1}", r"[\s\S][\s\S]", "keep"), (r"{ABBREV1}", None, "period"),
    (r"{ABBREV2}", None, "keep"), (r"{ABBREV4}", r"{SPACE}", "keep"), (r"{ACRO}", r"{SPACENL}", "keep"),
    (r"{TBSPEC2}", r"{SPACENL}", "keep"), (r"{FILENAME}", r"({SPACENL}|[.?!,])", "keep"),
    (r"{WORD}\.", r"{INSENTP}", "soft"), (r"{PHONE}", None, "phone"),
    (r"{DBLQUOT}", r"[A-Za-z0-9$]", "left"), (r"{DBLQUOT}", None, "right"), (r"\x7f", None, "skip"),
    (r"{LESSTHAN}", None, "<"), (r"{GREATERTHAN}", None, ">"),
    (r"{SMILEY}", r"[^A-Za-z0-9]", "parens"), (r"{ASIANSMILEY}", None, "parens"),
    (r"\{", None, "-LCB-"), (r"\}", None, "-RCB-"), (r"\[", None, "-LSB-"), (r"\]", None, "-RSB-"),
    (r"\(", None, "-LRB-"), (r"\)", None, "-RRB-"),
    (r"{HYPHENS}", None, "hyphens"), (r"{LDOTS}", None, "..."), (r"{FNMARKS}", None, "keep"),
    (r"{ASTS}", None, "keep"), (r"{INSENTP}", None, "keep"), (r"[?!]+", None, "keep"),
    (r"[.¡¿\u037E\u0589\u061F\u06D4\u0700-\u0702\u07FA\u3002]", None, "keep"), (r"=", None, "keep"),
    (r"\/", None, "keep"),
    (r"{HTHING}\.", r"{INSENTP}", "soft"), (r"{HTHING}", None, "soft"),
    (r"{THING}\.", r"{INSENTP}", "keep"), (r"{THING}", None, "keep"),
    (r"{THINGA}\.", r"{INSENTP}", "amp"), (r"{THINGA}", None, "amp"),
    (r"'", r"[A-Za-z][^ \t\n\r\u00A0]", "left"),
    (r"{REDAUX}", None, "right"), (r"{SREDAUX}", None, "right"), (r"{QUOTES}", None, "right"),
    (r"{FAKEDUCKFEET}", None, "keep"), (r"{MISCSYMBOL}", None, "keep"),
    (r"\x00|{SPACES}|[\u200B\u200E-\u200F\uFEFF]", None, "skip"), (r"{NEWLINE}", None, "skip"),
    (r"&nbsp;", None, "skip"), (r"[^\n]", None, "skip"),
]

_NAME = re.compile(r"\{([A-Z][A-Z0-9_]*)\}")


def _expand(pat: str) -> str:
    return _NAME.sub(lambda m: "(" + _expand(_MACROS[m.group(1)]) + ")", pat)


def _caseless(pat: str) -> str:
    """JFlex %caseless: letters outside character classes match either case; classes are exact."""
    out, i, in_cls = [], 0, False
    while i < len(pat):
        c = pat[i]
        if c == "\\":
            n = {"u": 6, "x": 4}.get(pat[i + 1], 2)
            out.append(pat[i:i + n]); i += n; continue
        if in_cls:
            in_cls = c != "]"
            out.append(c)
        elif c == "[":
            in_cls = True
            if pat[i + 1] == "^":
                out.append("[^"); i += 2; continue
            out.append(c)
        elif c.isascii() and c.isalpha():
            out.append(f"[{c.lower()}{c.upper()}]")
        elif c == "(" and pat[i + 1] != "?":
            out.append("(?:")
        else:
            out.append(c)
        i += 1
    return "".join(out)


def _top_alternatives(pat: str) -> list[str]:
    parts, depth, in_cls, start, i = [], 0, False, 0, 0
    while i < len(pat):
        c = pat[i]
        if c == "\\":
            i += 2; continue
        if in_cls:
            in_cls = c != "]"
        elif c == "[":
            in_cls = True
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
        elif c == "|" and depth == 0:
            parts.append(pat[start:i]); start = i + 1
        i += 1
    parts.append(pat[start:])
    return parts


def _alternatives(pat: str) -> list[str]:
    """A rule's top-level alternatives, each its own candidate (JFlex takes the longest of them;
    Python's regex would take the first that matches)."""
    out = []
    for part in _top_alternatives(pat):
        m = _NAME.fullmatch(part)
        out += _alternatives(_MACROS[m.group(1)]) if m else [_expand(part)]
    return out


@lru_cache(maxsize=None)
def _unicode_classes() -> tuple[str, str]:
    """JFlex's [:letter:] (Java Character.isLetter) and [:uppercase:] (isUpperCase)."""
    return _ranges(str.isalpha), _ranges(lambda c: unicodedata.category(c) == "Lu")


def _jflex(pat: str) -> str:
    """A JFlex rule as a Python regex: macros expanded, Unicode classes spelled out, caseless letters."""
    letters, upper = _unicode_classes()
    pat = _expand(pat).replace("[:letter:]", f"[{letters}]").replace("[:digit:]", r"[0-9\d]") \
        .replace("[:uppercase:]", f"[{upper}]")
    return _caseless(pat)


@lru_cache(maxsize=None)
def _lexer():
    """One regex trying every rule alternative at a position, each in its own lookahead group pair
    (match, trailing context); built on first use (about 0.5 s)."""
    groups, actions = [], []
    for rule, ctx, action in _RULES:
        c = "" if ctx is None else _jflex(ctx)
        for alt in _alternatives(rule):
            k = len(actions)
            groups.append(f"(?=(?P<t{k}>{_jflex(alt)})(?P<c{k}>{c}))?")
            actions.append(action)
    rx = re.compile("".join(groups))
    assert rx.groups == 2 * len(actions)
    return rx, actions

_NBSP = "\u00A0"
_QL = [(re.compile(a), b) for a, b in ((r"&apos;|'", "`"), (r'"|&quot;', "``"))]
_QR = [(re.compile(a), b) for a, b in ((r"&apos;|'", "'"), (r'"|&quot;', "''"))]
_QBOTH = [(re.compile(a), b) for a, b in (("[\u0091\u2018\u201B\u2039]", "`"), ("[\u0092\u2019\u203A]", "'"),
                                           ("[\u0093\u201C\u00AB]", "``"), ("[\u0094\u201D\u00BB]", "''"))]
_AMP = re.compile(r"(?i:&amp;)")
_FRACS = {"\u00BC": "1/4", "\u00BD": "1/2", "\u00BE": "3/4", "\u2153": "1/3", "\u2154": "2/3"}


def _quotes(tok, left):
    for rx, rep in (_QL if left else _QR) + _QBOTH:
        tok = rx.sub(rep, tok)
    return tok


def _soft(tok):
    return (tok.replace("\u00AD", "") or "-") if "\u00AD" in tok else tok


def _scan(text: str, end: int) -> tuple[list[str], int]:
    """PTB tokens of ``text`` that start before ``end``, and where the last of them ended."""
    rx, actions = _lexer()
    rules = range(len(actions))
    out, pos = [], 0
    while pos < end:
        regs = rx.match(text, pos).regs
        ends = [e for _, e in regs[2::2]]
        # JFlex: the longest match, trailing context included; on a tie the earlier rule
        best = max(rules, key=ends.__getitem__)
        s, e = regs[2 * best + 1]
        tok, act, nxt = text[s:e], actions[best], e
        if act == "skip":
            pos = nxt; continue
        if act == "keep":
            pass
        elif act == "soft":
            tok = _soft(tok)
        elif act in ("back3", "back2"):
            n = int(act[-1]); tok, nxt = tok[:-n], e - n
        elif act == "nbsp":
            tok = tok.replace(" ", _NBSP)
        elif act == "phone":
            tok = tok.replace(" ", _NBSP).replace("(", "-LRB-").replace(")", "-RRB-")
        elif act == "parens":
            tok = tok.replace("(", "-LRB-").replace(")", "-RRB-")
        elif act == "amp":
            tok = _AMP.sub("&", tok)
        elif act == "left":
            tok = _quotes(tok, True)
        elif act == "right":
            tok = _quotes(tok, False)
        elif act == "frac":
            tok = _FRACS.get(tok, tok)
        elif act == "currency":
            tok = tok.replace("\u00A2", "cents").replace("\u00A3", "#")
            tok = re.sub("[\u0080\u00A4\u20A0\u20AC]", "$", tok)
        elif act == "acronym":
            if len(tok) == 2:
                tok = tok[:-1]
            nxt = e - 1
        elif act == "period":
            nxt = e - 1
        elif act == "hyphens":
            tok = "--" if 3 <= len(tok) <= 4 else tok
        else:
            tok = act
        out.append(tok)
        pos = nxt
    return out, pos


_SPACES = re.compile("([ \t\u00A0\u2000-\u200A\u3000]+)")


@lru_cache(maxsize=1 << 16)
def _chunk(chunk: str, follow: str) -> list[str] | None:
    """Tokens of one space-free chunk given the text after it (``follow``); None when a token runs on
    past the chunk."""
    toks, end = _scan(chunk + follow, len(chunk))
    return toks if end == len(chunk) else None


def ptb_tokens(line: str) -> list[str]:
    """PTBTokenizer's tokens of one line (before lower-casing and punctuation removal).

    A line is cut at its spaces and each piece scanned with what follows it, cached: PTB's rules look
    one piece ahead (an acronym before "The"), further only for numbers and dots (a phone number
    "555 123 4567", "1 1/2", ". . ."), so that much is passed; a token that runs past its piece
    (or SGML, whose tags may hold spaces) sends the whole line through the scanner instead."""
    parts = _SPACES.split(line)
    if parts[0] == "":
        parts = parts[2:]
    if parts and parts[-1] == "":
        parts = parts[:-2]
    out, n = [], len(parts)
    for i in range(0, n, 2):
        j = i + 2
        while j < n and (j == i + 2 or parts[j][0] in _RUNS_ON) and j < i + 10:
            j += 2
        follow = "".join(parts[i + 1:j]) + (" " if j < n else "\n")
        toks = None if "<" in follow else _chunk(parts[i], follow)
        if toks is None:
            return _scan(line + "\n", len(line))[0]
        out += toks
    return out


_RUNS_ON = frozenset("0123456789.(\u07C0\u07C1\u07C2\u07C3\u07C4\u07C5\u07C6\u07C7\u07C8\u07C9") | \
    frozenset(chr(c) for c in range(0x10000) if chr(c).isdecimal())

#: pycocoevalcap's PUNCTUATIONS (case-sensitive: the lower-cased "-lrb-" etc. are not in it)
PTB_PUNCTUATIONS = frozenset(["''", "'", "``", "`", "-LRB-", "-RRB-", "-LCB-", "-RCB-", ".", "?", "!", ",", ":",
                              "-", "--", "...", ";"])
_LINEBREAKS = re.compile("[\n\r\u2028\u2029\u000B\u000C\u0085]")


def tokenize(text: str) -> str:
    """pycocoevalcap's PTBTokenizer + its punctuation removal, in Python: the same string, no Java.

    Lower-cased PTB tokens joined by single spaces, pycocoevalcap's ``PUNCTUATIONS`` dropped. So
    "(left)" gives "-lrb- left -rrb-" (the list has only upper-case "-LRB-"), "patient's" "patient 's",
    "can't" "ca n't", and "%", "&", "~", "___", "3,000", "1:00", "e.g.", "p.m." stay tokens.
    Checked against the real PTBTokenizer on 22k lines (tests/test_metrics_independent.py,
    tests/data/ptb_cases.json). Where it cannot be the same: pycocoevalcap turns only "\\n" into a space,
    so a "\\r", form feed, U+2028/2029 or U+0085 in a report splits its line and shifts every later
    report's tokens by one line; here they are spaces. And in a batch a report's last token can
    depend on the next report's first word (an acronym such as "B." before "The" loses its period);
    here a report is tokenised alone.
    """
    toks = ptb_tokens(_LINEBREAKS.sub(" ", str(text)))
    return " ".join(t for t in (t.lower() for t in toks) if t not in PTB_PUNCTUATIONS)


def _pairs(predictions: list[str], references: list[str]) -> tuple[dict, dict]:
    """pycocoevalcap's input: ``gts`` and ``res`` dicts of one tokenised string per id."""
    if len(predictions) != len(references):
        raise DataError(f"NLG scores need one reference per prediction, got {len(predictions)} "
                        f"predictions and {len(references)} references")
    gts = {i: [tokenize(r)] for i, r in enumerate(references)}
    res = {i: [tokenize(p)] for i, p in enumerate(predictions)}
    return gts, res


def _bleu(gts: dict, res: dict) -> tuple[list[float], list[list[float]]]:
    from pycocoevalcap.bleu.bleu import Bleu

    score, scores = Bleu(4).compute_score(gts, res, verbose=0)
    return [float(s) for s in score], [[float(v) for v in s] for s in scores]


def _rouge(gts: dict, res: dict) -> tuple[float, list[float]]:
    from pycocoevalcap.rouge.rouge import Rouge

    score, scores = Rouge().compute_score(gts, res)
    return float(score), [float(v) for v in scores]


def _cider(gts: dict, res: dict) -> tuple[float, list[float]]:
    """pycocoevalcap's Cider (which is CIDEr-D: clipped counts, Gaussian length penalty, x10).

    With no n-gram in any reference pycocoevalcap asserts on an empty document-frequency table;
    the formula's value there is 0 for every sample (no reference n-gram to match).
    """
    from pycocoevalcap.cider.cider import Cider

    if not any(r[0] for r in gts.values()):
        return 0.0, [0.0] * len(gts)
    score, scores = Cider().compute_score(gts, res)
    return float(score), [float(v) for v in scores]


# -- METEOR: an external Java program, started once per process --------------------------------

_meteor_lock = threading.Lock()
_meteor_proc = None
_meteor_error: str | None = None


def meteor_missing_reason() -> str | None:
    """None when METEOR can be computed here, otherwise why it is not."""
    if shutil.which("java") is None:
        return ("METEOR not computed: 'java' is not on PATH (pycocoevalcap's METEOR 1.5 is a Java "
                "program); install a Java runtime to report it")
    return _meteor_error


def _discard(proc) -> None:
    """Let a failed pycocoevalcap Meteor be collected: it keeps its lock when compute_score raises, and
    its ``__del__`` (which kills the JVM) takes that lock, so it would hang forever."""
    lock = getattr(proc, "lock", None)
    if lock is not None and lock.locked():
        lock.release()


def _meteor(gts: dict, res: dict) -> tuple[float, list[float]] | None:
    """(corpus, per-sample) METEOR, or None when it cannot be computed (reason recorded)."""
    global _meteor_proc, _meteor_error
    if shutil.which("java") is None:
        return None
    with _meteor_lock:
        try:
            if _meteor_proc is None:
                from pycocoevalcap.meteor.meteor import Meteor

                _meteor_proc = Meteor()
            score, scores = _meteor_proc.compute_score(gts, res)
        except (OSError, ValueError) as exc:  # JVM failed to start or died: no number, say why
            _discard(_meteor_proc)
            _meteor_proc = None
            _meteor_error = f"METEOR not computed: the METEOR Java process failed ({type(exc).__name__}: {exc})"
            return None
    _meteor_error = None
    return float(score), [float(v) for v in scores]


def _bleu_family(gts: dict, res: dict) -> tuple[dict[str, float], dict[str, list[float]]]:
    bleu, each = _bleu(gts, res)
    return ({f"bleu{n + 1}": bleu[n] for n in range(4)}, {f"bleu{n + 1}": each[n] for n in range(4)})


def _single(key: str, fn):
    def family(gts: dict, res: dict) -> tuple[dict[str, float], dict[str, list[float]]]:
        out = fn(gts, res)
        return ({}, {}) if out is None else ({key: out[0]}, {key: out[1]})
    return family


#: scorer family -> fn(gts, res) -> (corpus values, per-sample values)
SCORERS = {"bleu": _bleu_family, "rouge_l": _single("rouge_l", _rouge), "cider_d": _single("cider_d", _cider),
           "meteor": _single("meteor", _meteor)}
#: the keys each scorer family produces
KEYS = {"bleu": ("bleu1", "bleu2", "bleu3", "bleu4"), "rouge_l": ("rouge_l",), "cider_d": ("cider_d",),
        "meteor": ("meteor",)}


def score(families: tuple[str, ...] | list[str], predictions: list[str], references: list[str]
          ) -> tuple[dict[str, float], dict[str, list[float]]]:
    """(corpus, per-sample) values of the named scorer families (``SCORERS``), in one pass.

    An empty corpus gives NaN (undefined), never 0. METEOR's keys are absent when it cannot be
    computed (:func:`meteor_missing_reason`).
    """
    unknown = [f for f in families if f not in SCORERS]
    if unknown:
        raise KeyError(f"unknown NLG scorer(s) {unknown}; known: {sorted(SCORERS)}")
    gts, res = _pairs(predictions, references)
    corpus: dict[str, float] = {}
    each: dict[str, list[float]] = {}
    for fam in families:
        if not gts:
            if fam != "meteor" or meteor_missing_reason() is None:
                corpus.update({k: float("nan") for k in KEYS[fam]})
                each.update({k: [] for k in KEYS[fam]})
            continue
        c, e = SCORERS[fam](gts, res)
        corpus.update(c)
        each.update(e)
    return corpus, each


def nlg_scores(predictions: list[str], references: list[str]) -> dict[str, float]:
    """Corpus ``bleu1..bleu4, rouge_l, cider_d``, and ``meteor`` when Java is present."""
    return score(tuple(SCORERS), predictions, references)[0]


def nlg_per_sample(predictions: list[str], references: list[str]) -> dict[str, list[float]]:
    """Per-report values of the same keys, for bootstrap CIs (the module docstring says which of
    them average to the corpus value and which do not)."""
    return score(tuple(SCORERS), predictions, references)[1]
