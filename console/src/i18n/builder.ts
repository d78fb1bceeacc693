import type { Dicts } from "../i18n";

// Labels of the job builder (src/builder).
export const builder: Dicts = { en: {}, zh: {} };
