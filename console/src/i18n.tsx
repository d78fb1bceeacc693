// Every label the console shows, in Chinese and English. Each area keeps its own dictionary
// (src/i18n/*.ts) so that pages and the job builder can grow theirs independently; a key
// missing from a language is a bug the browser tests catch (the key itself is shown).
import { createContext, useContext, useState, type ReactNode } from "react";
import { common } from "./i18n/common";
import { pages } from "./i18n/pages";
import { builder } from "./i18n/builder";

export type Lang = "en" | "zh";
export type Dict = Record<string, string>;
export type Dicts = { en: Dict; zh: Dict };

const all: Dicts = {
  en: { ...common.en, ...pages.en, ...builder.en },
  zh: { ...common.zh, ...pages.zh, ...builder.zh },
};

const STORAGE_KEY = "ferry.lang";

function initialLang(): Lang {
  const saved = localStorage.getItem(STORAGE_KEY);
  if (saved === "en" || saved === "zh") return saved;
  return navigator.language.toLowerCase().startsWith("zh") ? "zh" : "en";
}

type I18n = { lang: Lang; setLang: (l: Lang) => void; t: (key: string, vars?: Record<string, string | number>) => string };

const I18nContext = createContext<I18n | null>(null);

export function I18nProvider({ children }: { children: ReactNode }) {
  const [lang, setLangState] = useState<Lang>(initialLang);
  const setLang = (l: Lang) => {
    localStorage.setItem(STORAGE_KEY, l);
    document.documentElement.lang = l === "zh" ? "zh-CN" : "en";
    setLangState(l);
  };
  const t = (key: string, vars?: Record<string, string | number>) => {
    let s = all[lang][key] ?? key;
    if (vars) for (const [k, v] of Object.entries(vars)) s = s.replaceAll(`{${k}}`, String(v));
    return s;
  };
  return <I18nContext.Provider value={{ lang, setLang, t }}>{children}</I18nContext.Provider>;
}

export function useI18n(): I18n {
  const ctx = useContext(I18nContext);
  if (!ctx) throw new Error("useI18n outside I18nProvider");
  return ctx;
}
