//! The approved-use classes rules are written in, and how a parcel layer's own land-use values
//! map onto them: landwatch's names, English synonyms, and China's land-use classification
//! (GB/T 21010-2017 and the Third National Land Survey's working classes, 三调工作分类; the
//! Second Survey's names, 二调, too) by code (`DLBM`, e.g. `0103`, `1104A`) or by name (`DLMC`,
//! e.g. `旱地`, `坑塘水面`). Pure.

/// The approved-use classes landwatch knows, with their Chinese names.
pub const CLASSES: &[(&str, &str)] = &[
    ("farmland", "耕地"),
    ("garden", "园地"),
    ("forest", "林地"),
    ("grassland", "草地"),
    ("construction", "建设用地"),
    ("water", "水域"),
    ("road", "交通用地"),
    ("facility_agriculture", "设施农用地"),
    ("unused", "未利用地"),
];

/// Land-use codes (GB/T 21010-2017 and 三调; the Second Survey's three-digit codes only where they
/// cannot be mistaken for a four-digit code read as a number) and their classes. First-level
/// classes are two digits; 三调 suffixes (`K`, `A`) are stripped before a lookup fails.
const CODES: &[(&str, &str)] = &[
    // 00 湿地 (三调): its second-level classes are listed under their own first-level class.
    ("00", "water"),
    ("01", "farmland"),
    ("0101", "farmland"),
    ("0102", "farmland"),
    ("0103", "farmland"),
    ("011", "farmland"),
    ("012", "farmland"),
    ("013", "farmland"),
    ("02", "garden"),
    ("0201", "garden"),
    ("0202", "garden"),
    ("0203", "garden"),
    ("0204", "garden"),
    ("021", "garden"),
    ("022", "garden"),
    ("023", "garden"),
    ("03", "forest"),
    ("0301", "forest"),
    ("0302", "forest"),
    ("0303", "forest"),
    ("0304", "forest"),
    ("0305", "forest"),
    ("0306", "forest"),
    ("0307", "forest"),
    ("031", "forest"),
    ("032", "forest"),
    ("033", "forest"),
    ("04", "grassland"),
    ("0401", "grassland"),
    ("0402", "grassland"),
    ("0403", "grassland"),
    ("0404", "grassland"),
    ("041", "grassland"),
    ("042", "grassland"),
    ("043", "grassland"),
    ("05", "construction"),
    ("0501", "construction"),
    ("0502", "construction"),
    ("0503", "construction"),
    ("0504", "construction"),
    ("0505", "construction"),
    ("0506", "construction"),
    ("0507", "construction"),
    ("0508", "construction"),
    ("05H1", "construction"),
    ("06", "construction"),
    ("0601", "construction"),
    ("0602", "construction"),
    ("0603", "construction"),
    ("0604", "construction"),
    ("07", "construction"),
    ("0701", "construction"),
    ("0702", "construction"),
    ("08", "construction"),
    ("0801", "construction"),
    ("0802", "construction"),
    ("0803", "construction"),
    ("0804", "construction"),
    ("0805", "construction"),
    ("0806", "construction"),
    ("0807", "construction"),
    ("0808", "construction"),
    ("0809", "construction"),
    ("0810", "construction"),
    ("08H1", "construction"),
    ("08H2", "construction"),
    ("09", "construction"),
    ("0901", "construction"),
    ("0902", "construction"),
    ("0903", "construction"),
    ("0904", "construction"),
    ("0905", "construction"),
    ("0906", "construction"),
    ("10", "road"),
    ("1001", "road"),
    ("1002", "road"),
    ("1003", "road"),
    ("1004", "road"),
    ("1005", "road"),
    ("1006", "road"),
    ("1007", "road"),
    ("1008", "road"),
    ("1009", "road"),
    ("11", "water"),
    ("1101", "water"),
    ("1102", "water"),
    ("1103", "water"),
    ("1104", "water"),
    ("1105", "water"),
    ("1106", "water"),
    ("1107", "water"),
    ("1108", "water"),
    ("1109", "construction"),
    ("1110", "water"),
    ("12", "unused"),
    ("1201", "construction"),
    ("1202", "facility_agriculture"),
    ("1203", "farmland"),
    ("1204", "unused"),
    ("1205", "unused"),
    ("1206", "unused"),
    ("1207", "unused"),
    ("20", "construction"),
    ("201", "construction"),
    ("202", "construction"),
    ("203", "construction"),
    ("204", "construction"),
    ("205", "construction"),
];

/// Land-use names (三调 and 二调, first- and second-level) and their classes. A 三调 name with
/// the prefix 可调整 (adjustable farmland turned garden, forest or pond) is looked up without it.
const NAMES: &[(&str, &str)] = &[
    ("湿地", "water"),
    ("耕地", "farmland"),
    ("水田", "farmland"),
    ("水浇地", "farmland"),
    ("旱地", "farmland"),
    ("田坎", "farmland"),
    ("园地", "garden"),
    ("种植园用地", "garden"),
    ("果园", "garden"),
    ("茶园", "garden"),
    ("橡胶园", "garden"),
    ("其他园地", "garden"),
    ("林地", "forest"),
    ("乔木林地", "forest"),
    ("竹林地", "forest"),
    ("红树林地", "forest"),
    ("森林沼泽", "forest"),
    ("灌木林地", "forest"),
    ("灌丛沼泽", "forest"),
    ("其他林地", "forest"),
    ("有林地", "forest"),
    ("草地", "grassland"),
    ("天然牧草地", "grassland"),
    ("沼泽草地", "grassland"),
    ("人工牧草地", "grassland"),
    ("其他草地", "grassland"),
    ("建设用地", "construction"),
    ("城镇村及工矿用地", "construction"),
    ("城市", "construction"),
    ("建制镇", "construction"),
    ("村庄", "construction"),
    ("盐田及采矿用地", "construction"),
    ("特殊用地", "construction"),
    ("风景名胜及特殊用地", "construction"),
    ("商业服务业用地", "construction"),
    ("商服用地", "construction"),
    ("商业服务业设施用地", "construction"),
    ("零售商业用地", "construction"),
    ("批发市场用地", "construction"),
    ("餐饮用地", "construction"),
    ("旅馆用地", "construction"),
    ("商务金融用地", "construction"),
    ("娱乐用地", "construction"),
    ("其他商服用地", "construction"),
    ("物流仓储用地", "construction"),
    ("工矿用地", "construction"),
    ("工矿仓储用地", "construction"),
    ("工业用地", "construction"),
    ("采矿用地", "construction"),
    ("盐田", "construction"),
    ("仓储用地", "construction"),
    ("住宅用地", "construction"),
    ("城镇住宅用地", "construction"),
    ("农村宅基地", "construction"),
    ("公共管理与公共服务用地", "construction"),
    ("机关团体新闻出版用地", "construction"),
    ("机关团体用地", "construction"),
    ("新闻出版用地", "construction"),
    ("科教文卫用地", "construction"),
    ("教育用地", "construction"),
    ("科研用地", "construction"),
    ("医疗卫生用地", "construction"),
    ("社会福利用地", "construction"),
    ("文化设施用地", "construction"),
    ("体育用地", "construction"),
    ("公用设施用地", "construction"),
    ("公园与绿地", "construction"),
    ("广场用地", "construction"),
    ("军事设施用地", "construction"),
    ("使领馆用地", "construction"),
    ("监教场所用地", "construction"),
    ("宗教用地", "construction"),
    ("殡葬用地", "construction"),
    ("风景名胜设施用地", "construction"),
    ("水工建筑用地", "construction"),
    ("空闲地", "construction"),
    ("交通运输用地", "road"),
    ("交通用地", "road"),
    ("铁路用地", "road"),
    ("轨道交通用地", "road"),
    ("公路用地", "road"),
    ("城镇村道路用地", "road"),
    ("街巷用地", "road"),
    ("交通服务场站用地", "road"),
    ("农村道路", "road"),
    ("机场用地", "road"),
    ("港口码头用地", "road"),
    ("管道运输用地", "road"),
    ("水域", "water"),
    ("水域及水利设施用地", "water"),
    ("河流水面", "water"),
    ("湖泊水面", "water"),
    ("水库水面", "water"),
    ("坑塘水面", "water"),
    ("养殖坑塘", "water"),
    ("沿海滩涂", "water"),
    ("内陆滩涂", "water"),
    ("沟渠", "water"),
    ("干渠", "water"),
    ("沼泽地", "water"),
    ("冰川及永久积雪", "water"),
    ("设施农用地", "facility_agriculture"),
    ("其他土地", "unused"),
    ("未利用地", "unused"),
    ("盐碱地", "unused"),
    ("沙地", "unused"),
    ("裸土地", "unused"),
    ("裸岩石砾地", "unused"),
    ("裸地", "unused"),
];

/// English words for the classes, lower case.
const SYNONYMS: &[(&str, &str)] = &[
    ("cropland", "farmland"),
    ("arable", "farmland"),
    ("agricultural", "farmland"),
    ("agriculture", "farmland"),
    ("orchard", "garden"),
    ("plantation", "garden"),
    ("woodland", "forest"),
    ("grass", "grassland"),
    ("pasture", "grassland"),
    ("meadow", "grassland"),
    ("built-up", "construction"),
    ("built_up", "construction"),
    ("urban", "construction"),
    ("residential", "construction"),
    ("industrial", "construction"),
    ("commercial", "construction"),
    ("transport", "road"),
    ("wetland", "water"),
    ("pond", "water"),
    ("river", "water"),
    ("lake", "water"),
    ("bare", "unused"),
    ("barren", "unused"),
];

/// Whether `u` is one of landwatch's classes (as normalised: lower case).
pub fn is_class(u: &str) -> bool {
    CLASSES.iter().any(|(c, _)| *c == u)
}

fn lookup(table: &[(&str, &'static str)], key: &str) -> Option<&'static str> {
    table.iter().find(|(k, _)| *k == key).map(|(_, c)| *c)
}

/// The class of a land-use value — a class name (any case), an English synonym, a land-use code
/// or a Chinese land-use name — or `None` when it is none of those.
pub fn class_of(raw: &str) -> Option<&'static str> {
    let t = raw.trim();
    if t.is_empty() {
        return None;
    }
    let lower = t.to_lowercase();
    if let Some((c, _)) = CLASSES.iter().find(|(c, _)| *c == lower) {
        return Some(c);
    }
    if let Some(c) = lookup(SYNONYMS, &lower) {
        return Some(c);
    }
    let upper = t.to_uppercase();
    if upper.starts_with(|c: char| c.is_ascii_digit()) {
        // A code: as given, then without 三调's trailing letters (0201K, 1104A, 201A).
        return lookup(CODES, &upper).or_else(|| {
            lookup(
                CODES,
                upper.trim_end_matches(|c: char| c.is_ascii_uppercase()),
            )
        });
    }
    lookup(NAMES, t).or_else(|| lookup(NAMES, t.strip_prefix("可调整")?))
}

/// Permitted uses of a permit register in Chinese, and the permitted uses of the shipped rules
/// (`[settings.permitted_uses]`) they are.
const PERMITTED_NAMES: &[(&str, &str)] = &[
    ("建设", "construction"),
    ("建设用地", "construction"),
    ("设施农业", "facility_agriculture"),
    ("设施农用地", "facility_agriculture"),
    ("设施农业用地", "facility_agriculture"),
    ("临时用地", "temporary_use"),
    ("临时使用", "temporary_use"),
    ("养殖", "aquaculture"),
    ("水产养殖", "aquaculture"),
];

/// The shipped rules' permitted use a permit register's Chinese name stands for (`建设用地` is
/// `construction`), or `None`.
pub fn permitted_use_of(raw: &str) -> Option<&'static str> {
    lookup(PERMITTED_NAMES, raw.trim())
}

/// The Chinese name of a class (`其他` for a use outside [`CLASSES`]).
pub fn name_zh(class: &str) -> &'static str {
    CLASSES
        .iter()
        .find(|(c, _)| *c == class)
        .map_or("其他", |(_, zh)| zh)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_names_and_words_map_to_classes() {
        for (raw, class) in [
            ("farmland", "farmland"),
            (" Farmland ", "farmland"),
            ("cropland", "farmland"),
            ("0101", "farmland"),
            ("0103", "farmland"),
            ("01", "farmland"),
            ("013", "farmland"),
            ("旱地", "farmland"),
            ("田坎", "farmland"),
            ("0201K", "garden"),
            ("可调整果园", "garden"),
            ("0301", "forest"),
            ("有林地", "forest"),
            ("0404", "grassland"),
            ("0702", "construction"),
            ("农村宅基地", "construction"),
            ("05H1", "construction"),
            ("08h2", "construction"),
            ("201A", "construction"),
            ("1109", "construction"),
            ("1006", "road"),
            ("1104", "water"),
            ("1104A", "water"),
            ("坑塘水面", "water"),
            ("1202", "facility_agriculture"),
            ("1206", "unused"),
        ] {
            assert_eq!(class_of(raw), Some(class), "{raw}");
        }
    }

    #[test]
    fn what_is_no_class_stays_unknown() {
        // A four-digit code whose leading zero a numeric field dropped is not guessed at: 101 is
        // 0101 (paddy) in 三调 and a railway in 二调.
        for raw in [
            "",
            "  ",
            "101",
            "9999",
            "0199",
            "01X9",
            "其他",
            "orchard land",
        ] {
            assert_eq!(class_of(raw), None, "{raw}");
        }
    }

    #[test]
    fn every_class_a_table_names_is_a_class() {
        for (k, c) in CODES.iter().chain(NAMES).chain(SYNONYMS) {
            assert!(is_class(c), "{k} maps to {c}");
        }
        assert_eq!(name_zh("facility_agriculture"), "设施农用地");
        let shipped = crate::rules::RuleSet::default_rules()
            .settings
            .permitted_uses;
        for (name, u) in PERMITTED_NAMES {
            assert!(shipped.contains_key(*u), "{name} is {u}");
        }
        assert_eq!(permitted_use_of(" 临时用地 "), Some("temporary_use"));
        assert_eq!(permitted_use_of("construction"), None);
        assert_eq!(name_zh("orchard"), "其他");
    }
}
