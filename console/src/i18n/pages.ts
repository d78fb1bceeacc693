import type { Dicts } from "../i18n";

// Labels of the pages under src/pages.
export const pages: Dicts = { en: {}, zh: {} };
