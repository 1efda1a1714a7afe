-- Diabetes among patients aged 65 and over, per hospital and age band (a CTE).
WITH elderly AS (
  SELECT * FROM admissions WHERE age_band IN ('65-74', '75+')
)
SELECT hospital,
       age_band,
       paillier_count(diabetic)     AS diabetic_patients,
       paillier_sum(length_of_stay) AS bed_days,
       COUNT(*)                     AS admissions
FROM elderly
GROUP BY hospital, age_band
ORDER BY hospital, age_band;
