"""mkdocs hook: the site also carries benchmarks/ (its README, history and result pictures), which the pages link
to as ../benchmarks/... so that the same links work in the repository and on the site."""

from pathlib import Path

from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ("README.md", "HISTORY.md", "results/**/*.png")


def on_files(files, config):
    for pattern in SHIPPED:
        for path in sorted((ROOT / "benchmarks").glob(pattern)):
            files.append(File(str(path.relative_to(ROOT)), str(ROOT), config["site_dir"],
                              config["use_directory_urls"]))
    return files


def on_page_markdown(markdown, page, config, files):
    if page.file.src_uri.startswith("benchmarks/"):
        return markdown.replace("](../docs/", "](../")
    return markdown.replace("](../benchmarks/", "](benchmarks/")
