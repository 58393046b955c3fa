from babeltune import languages


def test_table_covers_the_paper_languages():
    needed = {"en", "bg", "cs", "de", "es", "fi", "fr", "ru", "zh", "bn", "no", "hi"}
    assert needed <= set(languages.LANGUAGES)
    assert set(languages.PAPER_TRAIN) == {"en", "bg", "cs", "de", "es", "fi", "fr", "ru", "zh"}
    assert set(languages.PAPER_TEST) == {"en", "es", "fr", "bg", "ru", "zh", "bn", "no"}


def test_every_label_maps_back_to_its_language():
    for code, lang in languages.LANGUAGES.items():
        assert languages.from_lid_label(f"__label__{lang.lid176}") == code
        for label in lang.openlid:
            assert languages.from_lid_label(label) == code
