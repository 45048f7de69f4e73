"""The demo clinic's tables: services, lab tests with their reference ranges, the doctors'
profiles and rosters, medicines, and what brings patients in (complaints, findings, diagnoses,
plans).

Plain data, no database: ``app.demo_clinical`` seeds rows from these tables.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import time

# -- catalogues -----------------------------------------------------------------------------------

#: (name, category, default minutes, description)
DEMO_SERVICES = (
    ("General consultation", "Consultation", 15, "A visit with the family physician."),
    ("Follow-up", "Consultation", 10, "A short review of an earlier visit."),
    ("Health check-up", "Consultation", 30, "Yearly examination with screening tests."),
    ("Vaccination", "Preventive care", 10, None),
    ("Dressing", "Procedures", 15, "Wound cleaning and dressing."),
    ("Nebulisation", "Procedures", 20, None),
    ("ECG", "Diagnostics", 20, "12-lead electrocardiogram."),
    ("Dental check-up", "Dental", 30, "Examination, charting and advice."),
    ("Scaling and polishing", "Dental", 45, None),
    ("Tooth filling", "Dental", 30, "Composite restoration of one tooth."),
    ("Root canal", "Dental", 60, "One sitting of root canal treatment."),
    ("Extraction", "Dental", 30, None),
    ("Teeth whitening", "Dental", 60, "Offered again when the new lamp arrives."),
)
#: Services the catalogue keeps but no longer books.
INACTIVE_SERVICES = ("Teeth whitening",)

#: Reference ranges: (sex, age from, age to or None, low or None, high or None).
Range = tuple[str, int, int | None, str | None, str | None]


@dataclass(frozen=True)
class DemoLabTest:
    code: str
    name: str
    sample_type: str
    unit: str | None
    turnaround_hours: int
    ranges: tuple[Range, ...] = ()
    #: Decimal places results are reported with.
    places: int = 1


DEMO_LAB_TESTS = (
    # The adult "any" ranges are what a report shows when the sex is not known; a range for the
    # patient's sex wins over them.
    DemoLabTest("HB", "Haemoglobin", "Whole blood (EDTA)", "g/dL", 4, (
        ("any", 0, 12, "11.5", "15.5"),
        ("any", 12, None, "12.0", "17.5"),
        ("female", 12, None, "12.0", "15.5"),
        ("male", 12, None, "13.5", "17.5"),
    )),
    DemoLabTest("WBC", "Total leucocyte count", "Whole blood (EDTA)", "10^3/µL", 4, (
        ("any", 0, 12, "5.0", "14.5"),
        ("any", 12, None, "4.0", "11.0"),
    )),
    DemoLabTest("PLT", "Platelet count", "Whole blood (EDTA)", "10^3/µL", 4, (
        ("any", 0, None, "150", "450"),
    ), places=0),
    DemoLabTest("ESR", "Erythrocyte sedimentation rate", "Whole blood (EDTA)", "mm/h", 4, (
        ("female", 0, None, None, "20"),
        ("male", 0, None, None, "15"),
    ), places=0),
    DemoLabTest("FBS", "Fasting blood glucose", "Plasma (fluoride)", "mg/dL", 2, (
        ("any", 0, None, "70", "100"),
    ), places=0),
    DemoLabTest("HBA1C", "HbA1c (glycated haemoglobin)", "Whole blood (EDTA)", "%", 24, (
        ("any", 0, None, "4.0", "5.6"),
    )),
    DemoLabTest("TSH", "Thyroid stimulating hormone", "Serum", "mIU/L", 24, (
        ("any", 0, 18, "0.7", "5.7"),
        ("any", 18, None, "0.4", "4.0"),
    ), places=2),
    DemoLabTest("CREAT", "Creatinine", "Serum", "mg/dL", 6, (
        ("any", 0, 18, "0.3", "0.9"),
        ("any", 18, None, "0.59", "1.35"),
        ("female", 18, None, "0.59", "1.04"),
        ("male", 18, None, "0.74", "1.35"),
    ), places=2),
    DemoLabTest("UREA", "Blood urea", "Serum", "mg/dL", 6, (
        ("any", 0, None, "17", "43"),
    ), places=0),
    DemoLabTest("ALT", "ALT (SGPT)", "Serum", "U/L", 6, (
        ("female", 0, None, "7", "35"),
        ("male", 0, None, "7", "45"),
    ), places=0),
    DemoLabTest("CHOL", "Total cholesterol", "Serum", "mg/dL", 6, (
        ("any", 0, None, None, "200"),
    ), places=0),
    DemoLabTest("TG", "Triglycerides", "Serum", "mg/dL", 6, (
        ("any", 0, None, None, "150"),
    ), places=0),
    DemoLabTest("VITD", "25-OH Vitamin D", "Serum", "ng/mL", 48, (
        ("any", 0, None, "30", "100"),
    )),
    DemoLabTest("CRP", "C-reactive protein", "Serum", "mg/L", 6, (
        ("any", 0, None, None, "5.0"),
    )),
    DemoLabTest("URINE", "Urine routine and microscopy", "Urine", None, 4),
    DemoLabTest("BGRP", "Blood group and Rh type", "Whole blood (EDTA)", None, 4),
)
DEMO_TESTS_BY_CODE = {test.code: test for test in DEMO_LAB_TESTS}

# -- doctors --------------------------------------------------------------------------------------

DEMO_PROFILES = {
    "doctor": {
        "registration_number": "KMC 84512",
        "qualifications": "MBBS, MD (General Medicine)",
        "speciality": "Family medicine",
        "calendar_colour": "#2f7d6d",
    },
    "doctor2": {
        "registration_number": "KSDC A-11873",
        "qualifications": "BDS, MDS (Conservative Dentistry and Endodontics)",
        "speciality": "Dentistry",
        "calendar_colour": "#7a5ea8",
    },
}


@dataclass(frozen=True)
class DemoRoster:
    """Where and when a demo doctor works, what they see, and who books for them."""

    doctor: str
    branch: str
    weekdays: tuple[int, ...]
    start: time
    end: time
    break_start: time
    break_end: time
    #: Services booked with this doctor; repeats make a service more common.
    services: tuple[str, ...]
    desk: str
    #: From today on, demo bookings end by this local time: the late afternoons stay free for
    #: live demonstrations and for tests that book into the seeded clinic.
    quiet_from: time


DEMO_ROSTERS = (
    DemoRoster(
        "doctor", "DT", (0, 1, 2, 3, 4, 5), time(9, 0), time(17, 0), time(13, 0), time(14, 0),
        ("General consultation",) * 6 + ("Follow-up",) * 3
        + ("Health check-up", "Vaccination", "Dressing", "Nebulisation", "ECG"),
        "reception", time(15, 0),
    ),
    DemoRoster(
        "doctor2", "LS", (0, 1, 2, 3, 4), time(10, 0), time(18, 0), time(13, 30), time(14, 15),
        ("Dental check-up",) * 4 + ("Follow-up",) * 2 + ("Scaling and polishing",) * 2
        + ("Tooth filling",) * 2 + ("Root canal", "Extraction"),
        "reception2", time(16, 0),
    ),
)

# -- what happens in a visit ----------------------------------------------------------------------

#: (medicine, strength, dose, frequency, route, duration, quantity, instructions)
Item = tuple[str, str, str, str, str, str, str, str | None]
PARACETAMOL: Item = ("Paracetamol", "500 mg", "1 tablet", "Three times a day", "Oral", "3 days",
                     "9", "After food; only while there is fever or pain")
AMOXICILLIN: Item = ("Amoxicillin", "500 mg", "1 capsule", "Three times a day", "Oral",
                     "5 days", "15", "Complete the course")
AZITHROMYCIN: Item = ("Azithromycin", "500 mg", "1 tablet", "Once a day", "Oral", "3 days", "3",
                      "Instead of penicillins (allergy)")
IBUPROFEN: Item = ("Ibuprofen", "400 mg", "1 tablet", "Twice a day", "Oral", "3 days", "6",
                   "After food")
CETIRIZINE: Item = ("Cetirizine", "10 mg", "1 tablet", "Once at night", "Oral", "5 days", "5",
                    "May cause drowsiness")
METFORMIN: Item = ("Metformin", "500 mg", "1 tablet", "Twice a day", "Oral", "30 days", "60",
                   "With breakfast and dinner")
AMLODIPINE: Item = ("Amlodipine", "5 mg", "1 tablet", "Once a day", "Oral", "30 days", "30",
                    "Same time every morning")
PANTOPRAZOLE: Item = ("Pantoprazole", "40 mg", "1 tablet", "Once a day", "Oral", "14 days", "14",
                      "30 minutes before breakfast")
ORS: Item = ("Oral rehydration salts", "20.5 g sachet", "1 sachet in 1 litre of water",
             "Sip through the day", "Oral", "2 days", "4", None)
ONDANSETRON: Item = ("Ondansetron", "4 mg", "1 tablet", "Twice a day if vomiting", "Oral",
                     "2 days", "4", None)
FERROUS: Item = ("Ferrous sulphate", "200 mg", "1 tablet", "Once a day", "Oral", "90 days", "90",
                 "With orange juice; stools may turn dark")
NITROFURANTOIN: Item = ("Nitrofurantoin", "100 mg", "1 capsule", "Twice a day", "Oral", "5 days",
                        "10", "With food")
CHOLECALCIFEROL: Item = ("Cholecalciferol", "60,000 IU", "1 sachet", "Once a week", "Oral",
                         "8 weeks", "8", "Dissolve in a glass of milk")
LEVOTHYROXINE: Item = ("Levothyroxine", "50 mcg", "1 tablet", "Once a day", "Oral", "30 days",
                       "30", "Empty stomach, 30 minutes before breakfast")
FLUTICASONE: Item = ("Fluticasone nasal spray", "50 mcg/spray", "2 sprays in each nostril",
                     "Once a day", "Nasal", "14 days", "1", None)
DICLOFENAC_GEL: Item = ("Diclofenac gel", "1%", "Apply thinly", "Three times a day", "Topical",
                        "7 days", "1", "Not on broken skin")
SALBUTAMOL: Item = ("Salbutamol inhaler", "100 mcg/puff", "2 puffs", "When needed, up to 4 times a day",
                    "Inhaled", "30 days", "1", "Use with a spacer")
POVIDONE: Item = ("Povidone-iodine ointment", "5%", "Apply thinly", "At each dressing", "Topical",
                  "5 days", "1", None)
CHLORHEXIDINE: Item = ("Chlorhexidine mouthwash", "0.2%", "10 mL", "Twice a day", "Mouth rinse",
                       "7 days", "1", "Rinse for 30 seconds, do not swallow; nothing to eat for 30 minutes")
POTASSIUM_NITRATE: Item = ("Potassium nitrate toothpaste", "5%", "Pea-sized amount", "Twice a day",
                           "Topical (teeth)", "30 days", "1", "Do not rinse straight after brushing")


@dataclass(frozen=True)
class Condition:
    complaints: str
    examination: str
    diagnosis: str
    code: str | None
    plan: str
    items: tuple[Item, ...] = ()
    #: Lab tests ordered, and which of them come back out of range ("high"/"low") in this illness.
    tests: tuple[str, ...] = ()
    abnormal: dict[str, str] = field(default_factory=dict)
    advice: str | None = None
    follow_up_days: int | None = None
    fever: bool = False
    hypertensive: bool = False
    low_spo2: bool = False


MEDICAL = (
    Condition("Fever, sore throat and runny nose for 2 days.", "Throat congested, no exudate. Chest clear.",
              "Acute upper respiratory tract infection", "J06.9", "Symptomatic care; review if fever lasts beyond 3 days.",
              (PARACETAMOL, CETIRIZINE), ("WBC", "CRP"), {}, "Warm fluids, steam inhalation, rest.", None, fever=True),
    Condition("Painful swallowing and fever since yesterday.", "Tonsils enlarged with exudate; tender neck nodes.",
              "Acute tonsillitis", "J03.9", "Antibiotics for 5 days.", (AMOXICILLIN, PARACETAMOL), ("WBC", "CRP", "ESR"),
              {"WBC": "high", "CRP": "high"}, "Salt-water gargles.", 5, fever=True),
    Condition("Headaches in the morning; high reading at a pharmacy.", "BP raised on two readings. Heart sounds normal.",
              "Essential hypertension", "I10", "Start amlodipine; home BP diary; lifestyle advice.", (AMLODIPINE,),
              ("CREAT", "UREA", "CHOL", "TG"), {"CHOL": "high"}, "Less salt, 30 minutes' walk daily.", 30, hypertensive=True),
    Condition("Increased thirst and frequent urination for a month.", "No foot ulcers; pulses palpable.",
              "Type 2 diabetes mellitus without complications", "E11.9", "Metformin; diet counselling; HbA1c in 3 months.",
              (METFORMIN,), ("FBS", "HBA1C", "CREAT"), {"FBS": "high", "HBA1C": "high"}, "Avoid sugary drinks; regular meals.", 30),
    Condition("Burning in the upper abdomen after meals.", "Mild epigastric tenderness. No guarding.",
              "Gastro-oesophageal reflux disease", "K21.9", "PPI for two weeks; avoid late meals.", (PANTOPRAZOLE,),
              advice="Small meals; no food 2 hours before bed.", follow_up_days=14),
    Condition("Sneezing and itchy eyes every morning.", "Pale, boggy nasal mucosa.", "Allergic rhinitis", "J30.4",
              "Antihistamine and nasal spray.", (CETIRIZINE, FLUTICASONE)),
    Condition("Low back pain after lifting a suitcase.", "Paraspinal spasm; straight-leg raise negative.",
              "Low back pain", "M54.5", "Analgesics, heat, gentle exercise.", (IBUPROFEN, DICLOFENAC_GEL),
              advice="Avoid heavy lifting for two weeks."),
    Condition("Loose stools and vomiting since last night.", "Mild dehydration; abdomen soft.",
              "Acute gastroenteritis", "A09", "Oral rehydration; antiemetic.", (ORS, ONDANSETRON), ("WBC",),
              advice="Plenty of fluids; return if unable to keep fluids down."),
    Condition("Tiredness and breathlessness on climbing stairs.", "Pallor; no jaundice.", "Iron deficiency anaemia",
              "D50.9", "Iron for three months; repeat haemoglobin.", (FERROUS,), ("HB", "PLT", "ESR"), {"HB": "low"},
              "Iron-rich food: greens, pulses, jaggery.", 30),
    Condition("Burning on passing urine for 3 days.", "Suprapubic tenderness. No flank pain.",
              "Urinary tract infection", "N39.0", "Antibiotic; urine test.", (NITROFURANTOIN, PARACETAMOL),
              ("URINE", "WBC"), {"URINE": "abnormal"}, "Drink 2–3 litres of water a day.", 7),
    Condition("Aches in the legs and low energy.", "No bone tenderness.", "Vitamin D deficiency", "E55.9",
              "Weekly vitamin D for 8 weeks.", (CHOLECALCIFEROL,), ("VITD",), {"VITD": "low"},
              "Morning sunlight 15 minutes a day.", 60),
    Condition("Weight gain, feeling cold, dry skin.", "Dry skin; slow relaxing reflexes.", "Hypothyroidism",
              "E03.9", "Start levothyroxine; TSH in 6 weeks.", (LEVOTHYROXINE,), ("TSH",), {"TSH": "high"},
              follow_up_days=42),
    Condition("Cough and wheeze since the weather changed.", "Bilateral wheeze; no crepitations.",
              "Asthma, acute exacerbation", "J45.9", "Inhaler technique shown.", (SALBUTAMOL,), low_spo2=True,
              advice="Avoid dust and smoke."),
    Condition("Mild headache, otherwise well.", "Normal examination.", "Tension-type headache", "G44.2",
              "Reassurance; analgesic if needed.", (PARACETAMOL,)),
)
HEALTH_CHECK = Condition(
    "Yearly health check; no complaints.", "General and systemic examination normal.",
    "Routine general health examination", "Z00.0", "Screening tests; review with the reports.",
    (), ("HB", "FBS", "CHOL", "TG", "TSH", "CREAT", "ALT", "BGRP"), {}, "Stay active; balanced diet.", 7,
)
BY_SERVICE = {
    "Vaccination": (Condition("Due for the yearly influenza vaccine.", "Afebrile; fit for vaccination.",
                              "Immunisation against influenza", "Z23", "Influenza vaccine 0.5 mL IM, left deltoid.",
                              (PARACETAMOL,), advice="Mild soreness for a day is expected."),),
    "Dressing": (Condition("Graze on the forearm from a fall off a scooter.", "Superficial abrasion, clean, no foreign body.",
                           "Abrasion of forearm", "S50.8", "Cleaned and dressed; tetanus status checked.", (POVIDONE,),
                           advice="Keep dry; dressing every other day.", follow_up_days=2),),
    "Nebulisation": (MEDICAL[12],),
    "ECG": (Condition("Fluttering in the chest at night.", "Regular pulse at rest.", "Palpitations", "R00.2",
                      "ECG: normal sinus rhythm. Reassured; cut down on caffeine.", (), ("TSH", "HB")),),
    "Health check-up": (HEALTH_CHECK,),
}
DENTAL = {
    "Dental check-up": (
        Condition("Routine check-up.", "Plaque on lower anteriors; no caries.", "Routine dental examination",
                  "Z01.2", "Six-monthly review.", (), advice="Brush twice a day; floss at night."),
        Condition("Food sticks between lower back teeth.", "Caries on 36 (occlusal), dentine involved.",
                  "Caries of dentine", "K02.1", "Filling of 36 at the next visit.", (POTASSIUM_NITRATE,)),
        Condition("Bleeding gums while brushing.", "Generalised marginal gingivitis; calculus.",
                  "Chronic gingivitis", "K05.1", "Scaling and polishing.", (CHLORHEXIDINE,),
                  advice="Soft brush; rinse after meals."),
        Condition("Sensitivity to cold drinks.", "Cervical abrasion on 14, 24.", "Dentine hypersensitivity",
                  "K03.8", "Desensitising toothpaste.", (POTASSIUM_NITRATE,)),
    ),
    "Scaling and polishing": (
        Condition("Bad breath and bleeding gums.", "Calculus deposits, gingival inflammation.",
                  "Chronic gingivitis", "K05.1", "Full-mouth scaling and polishing done.", (CHLORHEXIDINE,),
                  advice="Brush twice a day; review in six months."),
    ),
    "Tooth filling": (
        Condition("Cavity in an upper tooth.", "Class II caries on 15.", "Caries of dentine", "K02.1",
                  "Composite restoration of 15 done.", (), advice="Avoid chewing on that side for 2 hours."),
    ),
    "Root canal": (
        Condition("Severe throbbing pain in a lower molar, worse at night.", "Deep caries on 46; tender on percussion.",
                  "Irreversible pulpitis", "K04.0", "Access opening and biomechanical preparation of 46.",
                  (IBUPROFEN, AMOXICILLIN, CHLORHEXIDINE), advice="Soft food; do not chew on the treated side.",
                  follow_up_days=7),
    ),
    "Extraction": (
        Condition("Broken tooth, pain on biting.", "Grossly decayed, non-restorable 37.", "Dental caries, unspecified",
                  "K02.9", "Extraction of 37 under local anaesthesia.", (AMOXICILLIN, PARACETAMOL, CHLORHEXIDINE),
                  ("FBS",), advice="Bite on the gauze 30 minutes; no spitting or hot food today.", follow_up_days=5),
    ),
}
CANCEL_REASONS = (
    "Patient unwell, will call to rebook",
    "Travelling out of town",
    "Clashes with an exam at school",
    "Patient asked to cancel by phone",
    "Booked twice by mistake",
    "Family emergency",
)
LAB_CANCEL_REASONS = ("Ordered twice by mistake", "Patient declined the test")
URINE_NORMAL = ("Pale yellow, clear; pH 6.0; protein nil; sugar nil; pus cells 1–2/hpf",
                "Straw, clear; pH 5.5; protein nil; sugar nil; pus cells 0–1/hpf")
URINE_ABNORMAL = "Turbid; protein trace; sugar nil; pus cells 25–30/hpf; nitrite positive"
BLOOD_GROUPS = ("O Rh positive", "B Rh positive", "A Rh positive", "AB Rh positive", "O Rh negative")


FOLLOW_UP_DENTAL = Condition(
    "Review after treatment; no pain.", "Healing well; occlusion checked.", "Review after dental treatment",
    "Z09", "No further treatment needed now.", (), advice="Six-monthly check-ups.",
)
