-- Cost per ICD-10 chapter: a join with a plaintext reference table.
WITH chapters(code, chapter) AS (
  VALUES ('E11', 'Endocrine'), ('I10', 'Circulatory'), ('I21', 'Circulatory'),
         ('J45', 'Respiratory'), ('C50', 'Neoplasms'), ('O80', 'Pregnancy'),
         ('S72', 'Injury'), ('N18', 'Genitourinary')
)
SELECT c.chapter,
       SUM(a.cost) AS total_cost,
       AVG(a.cost) AS mean_cost,
       COUNT(*)    AS admissions
FROM admissions a
JOIN chapters c ON a.diagnosis = c.code
GROUP BY c.chapter
ORDER BY c.chapter;
