"""The report's library: the inputs it reads (inputs), numbers in words (words), the verdicts' shapes
(verdicts), one module per part of the page, each a judge (numbers to verdicts) and a render (verdicts to
HTML), and the page that puts them together (page)."""
