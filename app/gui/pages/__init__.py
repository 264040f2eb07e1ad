"""Workflow pages of the main window, in navigation order.

Each entry is (title, module, class); the module is imported only when the window is
built, so adding a page is one line here. A page class takes (context, parent) where
context is the window's shared `AppContext`.
"""

PAGES: list[tuple[str, str, str]] = [
    ("Station", "app.gui.pages.station", "StationPage"),
    ("Record", "app.gui.pages.record", "RecordPage"),
    ("Datasets", "app.gui.pages.datasets", "DatasetsPage"),
    ("Train", "app.gui.pages.train", "TrainPage"),
    ("Evaluate", "app.gui.pages.evaluate", "EvaluatePage"),
    ("Results", "app.gui.pages.results", "ResultsPage"),
]
